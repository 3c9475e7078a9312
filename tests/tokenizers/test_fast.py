"""FASTTokenizer: DCT arithmetic, the stated bound (exact and tight), totality, compression, persistence."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tokenizers import Tokenizer

from drive_vla.tokenizers import (
    FASTTokenizer,
    TokenizerFileError,
    UniformBinTokenizer,
    round_trip_errors_m,
    tokens_per_plan,
)
from drive_vla.tokenizers.fast import BPE_FILE, CHAR_BASE, N_COEFFS, plan_coefficients, plan_from_coefficients
from drive_vla.types import FUTURE_STEPS, Trajectory

SLACK_M = 1e-5


@pytest.fixture(scope="module")
def fast(train_plans) -> FASTTokenizer:
    return FASTTokenizer().fit(train_plans)


def test_dct_of_displacements_inverts_and_concentrates_constant_speed():
    xy = np.cumsum(np.tile([4.0, 0.5], (FUTURE_STEPS, 1)), axis=0)
    c = plan_coefficients(xy)
    np.testing.assert_allclose(c[:2], np.sqrt(FUTURE_STEPS) * np.array([4.0, 0.5]))  # DC = sqrt(6) * mean step
    np.testing.assert_allclose(c[2:], 0.0, atol=1e-12)
    rng = np.random.default_rng(0)
    xy = rng.normal(size=(FUTURE_STEPS, 2))
    np.testing.assert_allclose(plan_from_coefficients(plan_coefficients(xy)), xy, atol=1e-12)


def test_stated_bound_value():
    tok = FASTTokenizer(scale_per_m=10.0)
    # Worst waypoint (the 5th): sum_j |(L @ IDCT)_kj| = 3.9453 for 6 steps; rounding 1/(2s) per coefficient.
    assert tok.round_trip_bound_m == pytest.approx(3.94527166 / 20.0 * np.sqrt(2.0), rel=1e-6)
    assert int(np.argmax(tok.waypoint_bounds_m)) == 4
    assert FASTTokenizer(scale_per_m=20.0).round_trip_bound_m == pytest.approx(tok.round_trip_bound_m / 2)


def test_random_in_range_round_trip_per_waypoint_bound(fast):
    """Random integer coefficients inside the fitted ranges plus random sub-step offsets stay within bounds."""
    rng = np.random.default_rng(0)
    lo, hi = fast.coefficient_ranges.T
    s = fast.config.scale_per_m
    plans = []
    for _ in range(300):
        q = rng.integers(lo, hi + 1)
        plans.append(
            Trajectory(xy=plan_from_coefficients((q + rng.uniform(-0.45, 0.45, N_COEFFS)) / s).astype(np.float32))
        )
    assert all(fast.in_range(p) for p in plans)
    errs = round_trip_errors_m(fast, plans)
    assert np.all(errs <= fast.waypoint_bounds_m[None] + SLACK_M)


def test_bound_is_tight(fast):
    """Rounding errors of 0.49 steps, signed like waypoint k's sensitivity to each coefficient, reach 97% of the bound."""
    s = fast.config.scale_per_m
    k = int(np.argmax(fast.waypoint_bounds_m))
    # Position of waypoint k as a function of each coefficient: the response to unit coefficients.
    sens = np.stack([plan_from_coefficients(np.eye(N_COEFFS)[j])[k] for j in range(N_COEFFS)])  # (12, 2)
    base = np.zeros(N_COEFFS)
    base[0] = 100  # 5 m steps forward
    signs = np.sign(sens[np.arange(N_COEFFS), np.arange(N_COEFFS) % 2])
    coefs = (base + 0.49 * signs) / s
    traj = Trajectory(xy=plan_from_coefficients(coefs).astype(np.float32))
    assert fast.in_range(traj)
    errs = round_trip_errors_m(fast, [traj])[0]
    assert errs[k] <= fast.waypoint_bounds_m[k] + SLACK_M
    assert errs[k] >= 0.97 * fast.waypoint_bounds_m[k]  # 0.49 / 0.5 = 0.98 of it by construction


def test_fewer_tokens_than_uniform_on_realistic_plans(fast, train_plans, test_plans):
    uniform = UniformBinTokenizer().fit(train_plans)
    n_fast, n_uniform = tokens_per_plan(fast, test_plans), tokens_per_plan(uniform, test_plans)
    assert n_uniform == 12.0
    assert n_fast < 0.5 * n_uniform, (n_fast, n_uniform)
    assert n_fast < tokens_per_plan(FASTTokenizer(), test_plans)  # the learnt merges are what compresses


def test_decode_is_total_over_any_id_sequence(fast):
    rng = np.random.default_rng(0)
    for n in (0, 1, 3, 12, 40):
        for _ in range(20):
            traj = fast.decode(rng.integers(0, fast.vocab_size, n).tolist())
            assert len(traj) == FUTURE_STEPS and np.all(np.isfinite(traj.xy)) and np.all(np.isfinite(traj.yaw_rad))
    np.testing.assert_array_equal(fast.decode([]).xy, 0.0)  # every coefficient missing -> standing still


def test_missing_coefficients_are_zero_and_extra_ones_dropped(fast, test_plans):
    zero = fast._bpe.token_to_id(chr(CHAR_BASE - int(fast.coefficient_ranges[:, 0].min())))  # the value 0
    for traj in test_plans[:20]:
        ids = fast.encode(traj)
        spelled = sum(len(fast._strings[i]) for i in ids)
        assert spelled <= N_COEFFS
        full = fast.decode(ids).xy
        padded = ids + [zero] * (N_COEFFS - spelled)  # explicit zeros == missing coefficients
        np.testing.assert_array_equal(fast.decode(padded).xy, full)
        np.testing.assert_array_equal(fast.decode(padded + ids).xy, full)  # past 12 characters: dropped


def test_grammar_ends_once_twelve_coefficients_are_spelled(fast):
    single = [i for i in range(fast.vocab_size) if len(fast._strings[i]) == 1][:1]
    prefix = single * 11
    allowed, may_end = fast.allowed_next(prefix)
    assert may_end and len(allowed) == fast.vocab_size
    assert fast.allowed_next(prefix + single) == ([], True)
    long = max(range(fast.vocab_size), key=lambda i: len(fast._strings[i]))
    spelled = 0
    prefix = []
    while spelled < N_COEFFS:
        prefix.append(long)
        spelled += len(fast._strings[long])
    assert fast.allowed_next(prefix) == ([], True)
    assert len(prefix) < N_COEFFS


def test_fit_learns_ranges_and_merges(fast, train_plans):
    unfitted = FASTTokenizer()
    assert unfitted.fitted is False and fast.fitted is True
    lo, hi = fast.coefficient_ranges.T
    assert np.all(lo <= 0) and np.all(hi >= 0)
    q = np.stack([np.rint(plan_coefficients(p.xy) * fast.config.scale_per_m) for p in train_plans])
    inside = np.mean((q >= lo) & (q <= hi))
    assert inside > 0.99
    assert np.all(hi - lo <= unfitted.coefficient_ranges[:, 1] - unfitted.coefficient_ranges[:, 0])
    alphabet = int(hi.max() - lo.min()) + 1
    assert alphabet < fast.vocab_size <= max(fast.config.bpe_vocab_size, alphabet)


def test_save_writes_hf_tokenizers_json_and_missing_bpe_is_named(fast, tmp_path):
    fast.save_pretrained(tmp_path)
    assert Tokenizer.from_file(str(tmp_path / BPE_FILE)).get_vocab_size() == fast.vocab_size
    state = json.loads((tmp_path / "action_tokenizer.json").read_text())["state"]
    assert state["coef_lo"] == fast.coefficient_ranges[:, 0].tolist()
    (tmp_path / BPE_FILE).unlink()
    with pytest.raises(TokenizerFileError, match=BPE_FILE):
        FASTTokenizer.from_pretrained(tmp_path)


def test_bad_config_names_the_field():
    with pytest.raises(ValueError, match="fast.scale_per_m"):
        FASTTokenizer(scale_per_m=0.0)
    with pytest.raises(ValueError, match="fast.scale_per_m.*alphabet"):
        FASTTokenizer(scale_per_m=900.0)
    with pytest.raises(ValueError, match="fast.bpe_vocab_size"):
        FASTTokenizer(bpe_vocab_size=0)
