"""UniformBinTokenizer: the stated bound (exact and tight, with and without error feedback), layout, fit, clipping."""

from __future__ import annotations

import numpy as np
import pytest

from drive_vla.tokenizers import UniformBinConfig, UniformBinTokenizer, round_trip_errors_m
from drive_vla.types import FUTURE_STEPS, Trajectory

SLACK_M = 1e-5


def random_in_range(tok: UniformBinTokenizer, n: int, seed: int, make) -> list[Trajectory]:
    rng = np.random.default_rng(seed)
    (lx, hx), (ly, hy) = tok.config.range_x_m, tok.config.range_y_m
    d = np.stack([rng.uniform(lx, hx, (n, FUTURE_STEPS)), rng.uniform(ly, hy, (n, FUTURE_STEPS))], axis=-1)
    return make(d)


@pytest.mark.parametrize("error_feedback", [True, False])
def test_random_in_range_round_trip_per_waypoint_bound(error_feedback, make_plans_from_displacements):
    tok = UniformBinTokenizer(
        bins_x=64, bins_y=32, range_x_m=(-1.0, 3.0), range_y_m=(-1.0, 1.0), error_feedback=error_feedback
    )
    plans = [p for p in random_in_range(tok, 400, 0, make_plans_from_displacements) if tok.in_range(p)]
    assert len(plans) > 350  # float32 storage may push a few endpoint displacements just outside
    errs = round_trip_errors_m(tok, plans)
    wx, wy = tok.bin_width_m
    half = np.hypot(wx, wy) / 2
    expected = np.full(FUTURE_STEPS, half) if error_feedback else half * np.arange(1, FUTURE_STEPS + 1)
    np.testing.assert_allclose(tok.waypoint_bounds_m, expected)
    assert np.all(errs <= expected + SLACK_M)
    if not error_feedback:
        assert errs[:, -1].max() > 2 * half  # errors do accumulate without feedback


@pytest.mark.parametrize("error_feedback", [True, False])
def test_bound_is_tight(error_feedback):
    """Displacements 0.99 half-bins above a centre on both axes reach the stated per-waypoint bound."""
    tok = UniformBinTokenizer(
        bins_x=64, bins_y=32, range_x_m=(-1.0, 3.0), range_y_m=(-1.0, 1.0), error_feedback=error_feedback
    )
    wx, wy = tok.bin_width_m
    step = np.array([-1.0 + 20 * wx + 0.99 * wx / 2, -1.0 + 16 * wy + 0.99 * wy / 2])
    traj = Trajectory(xy=np.cumsum(np.tile(step, (FUTURE_STEPS, 1)), axis=0).astype(np.float32))
    assert tok.in_range(traj)
    errs = round_trip_errors_m(tok, [traj])[0]
    assert np.all(errs <= tok.waypoint_bounds_m + SLACK_M)
    # With feedback the first waypoint carries one full rounding error; without, every waypoint k carries k.
    reached = errs[:1] if error_feedback else errs
    assert np.all(reached >= 0.98 * tok.waypoint_bounds_m[: len(reached)])


def test_layout_and_grammar():
    tok = UniformBinTokenizer(bins_x=10, bins_y=7)
    assert tok.vocab_size == 17 and tok.max_tokens == 12
    prefix: list[int] = []
    for pos in range(12):
        allowed, may_end = tok.allowed_next(prefix)
        assert may_end is False
        assert allowed == (list(range(10)) if pos % 2 == 0 else list(range(10, 17)))
        prefix.append(allowed[0])
    assert tok.allowed_next(prefix) == ([], True)
    with pytest.raises(ValueError, match=r"prefix\[1\].*dy id in 10..16"):
        tok.allowed_next([0, 3])
    with pytest.raises(ValueError, match=r"ids: got 11 ids, expected exactly 12"):
        tok.decode(prefix[:11])
    with pytest.raises(ValueError, match=r"prefix: got 13 ids"):
        tok.allowed_next(prefix + [0])


def test_token_steps_and_prefix_independence_from_later_waypoints(test_plans):
    tok = UniformBinTokenizer()
    ids = tok.encode(test_plans[0])
    assert tok.token_steps(ids) == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    changed = test_plans[0].xy.copy()
    changed[4:] += 3.0  # later waypoints differ: tokens of steps 0..3 must not
    assert tok.encode(changed)[:8] == ids[:8] and tok.encode(changed)[8:] != ids[8:]


def test_straight_stop_and_turn_decode_headings(make_plans_from_displacements):
    tok = UniformBinTokenizer()
    straight = make_plans_from_displacements(np.tile([5.0, 0.0], (1, FUTURE_STEPS, 1)))[0]
    yaw = tok.decode(tok.encode(straight)).yaw_rad
    assert np.all(np.abs(yaw) < 0.02)
    stopped = tok.decode(tok.encode(Trajectory(xy=np.zeros((6, 2), dtype=np.float32))))
    assert np.abs(stopped.xy).max() <= tok.round_trip_bound_m and np.all(stopped.yaw_rad == 0.0)  # held, not spun
    angles = np.linspace(0.2, 1.2, FUTURE_STEPS)
    left = make_plans_from_displacements((4.0 * np.stack([np.cos(angles), np.sin(angles)], axis=1))[None])[0]
    np.testing.assert_allclose(tok.decode(tok.encode(left)).yaw_rad, angles, atol=0.02)


def test_out_of_range_clips_to_end_bins():
    tok = UniformBinTokenizer(range_x_m=(0.0, 10.0), range_y_m=(-2.0, 2.0))
    traj = Trajectory(xy=np.cumsum(np.tile([30.0, -9.0], (FUTURE_STEPS, 1)), axis=0).astype(np.float32))
    assert not tok.in_range(traj)
    ids = tok.encode(traj)
    assert ids[0] == tok.config.bins_x - 1 and ids[1] == tok.config.bins_x  # top dx bin, bottom dy bin
    out = tok.decode(ids)
    np.testing.assert_allclose(out.xy[0], [10.0, -2.0], atol=1e-5)
    assert np.all(np.isfinite(out.xy))


def test_fit_sets_ranges_from_percentiles_with_margin(make_plans_from_displacements):
    rng = np.random.default_rng(0)
    d = np.stack([rng.uniform(2.0, 8.0, (500, FUTURE_STEPS)), np.zeros((500, FUTURE_STEPS))], axis=-1)
    tok = UniformBinTokenizer(fit_percentiles=(0.0, 100.0), fit_margin=0.1, min_span_m=0.5)
    assert tok.fitted is False
    tok.fit(make_plans_from_displacements(d))
    assert tok.fitted is True
    lo, hi = d[..., 0].min(), d[..., 0].max()
    np.testing.assert_allclose(tok.config.range_x_m, (lo - 0.1 * (hi - lo), hi + 0.1 * (hi - lo)), atol=1e-5)
    np.testing.assert_allclose(tok.config.range_y_m, (-0.25, 0.25))  # degenerate axis widened to min_span_m
    assert tok.bin_width_m[0] == pytest.approx((tok.config.range_x_m[1] - tok.config.range_x_m[0]) / 255)


def test_fit_skips_incomplete_plans(train_plans):
    bad = Trajectory(xy=np.full((6, 2), 500.0, dtype=np.float32), mask=np.array([True] * 5 + [False]))
    a = UniformBinTokenizer().fit(train_plans[:200])
    b = UniformBinTokenizer().fit([*train_plans[:200], bad])
    assert a.config == b.config


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"bins_x": 1}, "uniform.bins_x"),
        ({"range_y_m": (1.0, -1.0)}, "uniform.range_y_m"),
        ({"fit_percentiles": (5.0, 200.0)}, "uniform.fit_percentiles"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_bad_config_names_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        UniformBinTokenizer(**kwargs)


def test_config_and_kwargs_are_exclusive():
    with pytest.raises(ValueError, match="expected one"):
        UniformBinTokenizer(UniformBinConfig(), bins_x=3)
