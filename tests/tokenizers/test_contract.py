"""Contract tests run over every registered action tokenizer: grammar, totality, bounds, persistence, errors."""

from __future__ import annotations

import numpy as np
import pytest

from drive_vla.tokenizers import (
    ACTION_TOKENIZERS,
    ActionTokenizer,
    TokenizerFileError,
    load_action_tokenizer,
    make_action_tokenizer,
    round_trip_errors_m,
)
from drive_vla.types import FUTURE_STEPS, Trajectory

NAMES = sorted(ACTION_TOKENIZERS)
FLOAT32_SLACK_M = 1e-5  # float32 output rounding for positions within 100 m


@pytest.fixture(scope="module", params=NAMES)
def fitted(request, train_plans) -> ActionTokenizer:
    return make_action_tokenizer(request.param).fit(train_plans)


@pytest.mark.parametrize("name", NAMES)
def test_unfitted_tokenizer_works_with_default_ranges(name, test_plans):
    tok = make_action_tokenizer(name)
    assert tok.vocab_size > 0 and tok.max_tokens >= 1
    in_range = [t for t in test_plans if tok.in_range(t)]
    assert len(in_range) == len(test_plans)  # the defaults cover 0-20 m/s driving
    errs = round_trip_errors_m(tok, in_range)
    assert errs.max() <= tok.round_trip_bound_m + FLOAT32_SLACK_M


def test_realistic_round_trip_within_bound(fitted, test_plans):
    in_range = [t for t in test_plans if fitted.in_range(t)]
    assert len(in_range) >= 0.98 * len(test_plans)  # fit takes percentiles: rare outliers may clip
    errs = round_trip_errors_m(fitted, in_range)  # (N, 6)
    assert errs.shape == (len(in_range), FUTURE_STEPS)
    assert np.all(errs <= fitted.waypoint_bounds_m[None] + FLOAT32_SLACK_M)
    assert errs.max() <= fitted.round_trip_bound_m + FLOAT32_SLACK_M


def test_encode_respects_grammar(fitted, test_plans):
    for traj in test_plans[:50]:
        ids = fitted.encode(traj)
        assert 1 <= len(ids) <= fitted.max_tokens
        for i, tok_id in enumerate(ids):
            allowed, _ = fitted.allowed_next(ids[:i])
            assert tok_id in allowed
        assert fitted.allowed_next(ids)[1] is True


def test_decode_is_total_over_the_grammar(fitted, walk):
    rng = np.random.default_rng(0)
    for _ in range(200):
        ids = walk(fitted, rng)
        assert len(ids) <= fitted.max_tokens
        traj = fitted.decode(ids)
        assert isinstance(traj, Trajectory) and len(traj) == FUTURE_STEPS and traj.is_complete
        assert np.all(np.isfinite(traj.xy)) and np.all(np.isfinite(traj.yaw_rad))
        assert traj.dt_s == 0.5


def test_grammar_never_allows_ending_empty_and_caps_length(fitted):
    allowed, may_end = fitted.allowed_next([])
    assert allowed and may_end is False
    assert all(0 <= i < fitted.vocab_size for i in allowed)


def test_save_load_gives_identical_encode_decode(fitted, test_plans, walk, tmp_path):
    fitted.save_pretrained(tmp_path)
    for loaded in (load_action_tokenizer(tmp_path), type(fitted).from_pretrained(tmp_path)):
        assert type(loaded) is type(fitted)
        assert loaded.vocab_size == fitted.vocab_size and loaded.round_trip_bound_m == fitted.round_trip_bound_m
        for traj in test_plans[:100]:
            ids = fitted.encode(traj)
            assert loaded.encode(traj) == ids
            np.testing.assert_array_equal(loaded.decode(ids).xy, fitted.decode(ids).xy)
        rng = np.random.default_rng(1)
        for _ in range(20):
            ids = walk(fitted, rng)
            np.testing.assert_array_equal(loaded.decode(ids).xy, fitted.decode(ids).xy)
    assert not list(tmp_path.glob("*.pkl")) and not list(tmp_path.glob("*.bin"))


def test_load_from_directory_without_files_names_the_path(tmp_path):
    with pytest.raises(TokenizerFileError, match="action_tokenizer.json"):
        load_action_tokenizer(tmp_path)
    with pytest.raises(ValueError, match="does not exist"):
        load_action_tokenizer(tmp_path / "missing")


def test_unknown_name_lists_the_available():
    with pytest.raises(ValueError, match="'uniform'") as info:
        make_action_tokenizer("bogus")
    assert "bogus" in str(info.value)


def test_saved_type_mismatch_and_unknown_type(fitted, tmp_path):
    fitted.save_pretrained(tmp_path)
    other = next((c for n, c in ACTION_TOKENIZERS.items() if n != fitted.type_name), None)
    if other is not None:
        with pytest.raises(ValueError, match="type"):
            other.from_pretrained(tmp_path)
    path = tmp_path / "action_tokenizer.json"
    path.write_text(path.read_text().replace(f'"type": "{fitted.type_name}"', '"type": "nope"'))
    with pytest.raises(ValueError, match="'nope'"):
        load_action_tokenizer(tmp_path)


@pytest.mark.parametrize(
    "bad, field",
    [
        (np.zeros((5, 2)), "shape"),
        (np.zeros((6, 4)), "shape"),
        (np.full((6, 2), np.nan), "trajectory.xy"),
        (Trajectory(xy=np.zeros((7, 2), dtype=np.float32)), "trajectory.xy"),
        (Trajectory(xy=np.zeros((6, 2), dtype=np.float32), mask=np.array([True] * 5 + [False])), "trajectory.mask"),
        (Trajectory(xy=np.zeros((6, 2), dtype=np.float32), dt_s=0.1), "trajectory.dt_s"),
        ("not a plan", "trajectory"),
    ],
)
def test_bad_trajectory_raises_naming_the_field(fitted, bad, field):
    with pytest.raises(ValueError, match=field):
        fitted.encode(bad)


def test_bad_ids_raise_naming_the_position(fitted):
    with pytest.raises(ValueError, match=r"ids\[0\]"):
        fitted.decode([fitted.vocab_size])
    with pytest.raises(ValueError, match=r"prefix\[1\]"):
        fitted.allowed_next([0, -1])


def test_fit_rejects_no_complete_plan(fitted):
    incomplete = Trajectory(xy=np.zeros((6, 2), dtype=np.float32), mask=np.array([True] * 3 + [False] * 3))
    with pytest.raises(ValueError, match="no complete"):
        make_action_tokenizer(fitted.type_name).fit([incomplete])


def test_pose_arrays_encode_like_trajectories(fitted, test_plans):
    traj = test_plans[3]
    assert fitted.encode(traj.poses) == fitted.encode(traj) == fitted.encode(traj.xy)


def test_ids_may_be_numpy_or_torch_ints_but_not_floats(fitted, test_plans):
    import torch

    ids = fitted.encode(test_plans[0])
    expected = fitted.decode(ids).xy
    np.testing.assert_array_equal(fitted.decode(np.array(ids)).xy, expected)
    np.testing.assert_array_equal(fitted.decode(torch.tensor(ids)).xy, expected)
    with pytest.raises(ValueError, match=r"ids\[0\]: got 1.5"):
        fitted.decode([1.5] + ids[1:])
    with pytest.raises(ValueError, match=r"ids\[0\]"):
        fitted.decode(np.array(ids, dtype=np.float64))


@pytest.mark.parametrize("config", ["tiny.yaml", "tiny-fast.yaml", "smollm2-135m.yaml", "qwen2.5-0.5b.yaml"])
def test_shipped_model_configs_generate_at_most_16_tokens_per_plan(config):
    """Tokens mode generates the action tokenizer's tokens (at most max_tokens) and then the control tokens."""
    from pathlib import Path

    from drive_vla.config import load_config
    from drive_vla.model.config import ModelConfig
    from drive_vla.tokenizers import ControlTokenizer

    path = Path(__file__).resolve().parents[2] / "configs" / "model" / config
    cfg = load_config(ModelConfig, path)
    action = make_action_tokenizer(cfg.action_tokenizer, **cfg.action_tokenizer_kwargs)
    controls = ControlTokenizer(**cfg.control_tokenizer_kwargs).max_tokens if cfg.control_tokens else 0
    assert action.max_tokens + controls <= 16
    shipped = sorted(p.name for p in path.parent.glob("*.yaml"))
    assert config in shipped and len(shipped) == 4  # a new config joins the list above
