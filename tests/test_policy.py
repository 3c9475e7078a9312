"""DrivingPolicy: save/load round trip, input validation, the Planner contract, tokenizer fitting."""

from __future__ import annotations

import dataclasses
import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

from drive_vla.policy import DrivingPolicy
from drive_vla.types import CAMERA_NAMES, Planner

_spec = importlib.util.spec_from_file_location("model_fixtures", Path(__file__).parent / "model" / "conftest.py")
fx = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fx)


@pytest.fixture
def tiny_policy() -> DrivingPolicy:
    from drive_vla.config import load_config
    from drive_vla.model.config import ModelConfig

    return DrivingPolicy.build(load_config(ModelConfig, fx.TINY_YAML, list(fx.TEST_OVERRIDES)))


@pytest.fixture
def observation():
    return fx.make_observation(np.random.default_rng(5))


@pytest.mark.parametrize("tokenizer", ["uniform", "fast"])
def test_save_load_gives_identical_predictions(tmp_path, observation, tokenizer):
    from drive_vla.config import load_config
    from drive_vla.model.config import ModelConfig

    cfg = load_config(
        ModelConfig,
        fx.TINY_YAML,
        [*fx.TEST_OVERRIDES, f"action_tokenizer={tokenizer}", "action_tokenizer_kwargs={}", "planner_head.kind=gru"],
    )
    rng = np.random.default_rng(0)
    policy = DrivingPolicy.build(cfg, fit_trajectories=[fx.make_sample(rng, i).targets.trajectory for i in range(8)])
    policy.save_pretrained(tmp_path / "ckpt")
    files = {p.relative_to(tmp_path / "ckpt").as_posix() for p in (tmp_path / "ckpt").rglob("*") if p.is_file()}
    assert {"model.safetensors", "config.yaml", "lm/config.json", "control_tokenizer/control_tokenizer.json"} <= files
    assert any(f.startswith("text_tokenizer/") for f in files)
    assert any(f.startswith("action_tokenizer/") for f in files)
    assert not [f for f in files if f.endswith((".pkl", ".pt", ".pth", ".bin"))]

    loaded = DrivingPolicy.from_pretrained(tmp_path / "ckpt")
    assert loaded.config == policy.config
    a, b = policy.predict(observation), loaded.predict(observation)
    np.testing.assert_array_equal(a.trajectory.xy, b.trajectory.xy)
    assert a.controls == b.controls
    assert policy.explain(observation) == loaded.explain(observation)
    for mode in ("head",):  # the continuous head too
        policy.model.cfg = loaded.model.cfg = dataclasses.replace(policy.config, output_mode=mode)
        np.testing.assert_array_equal(
            policy.predict(observation).trajectory.xy, loaded.predict(observation).trajectory.xy
        )
    # Tied embeddings stay tied after loading.
    lm = loaded.model.lm
    assert lm.get_input_embeddings().weight.data_ptr() == lm.get_output_embeddings().weight.data_ptr()


def test_from_pretrained_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.yaml"):
        DrivingPolicy.from_pretrained(tmp_path / "nothing")


def test_policy_is_a_planner(tiny_policy, observation):
    assert isinstance(tiny_policy, Planner)
    plans = tiny_policy.predict_batch([observation, observation])
    assert len(plans) == 2
    np.testing.assert_allclose(plans[0].trajectory.xy, plans[1].trajectory.xy, atol=1e-5)
    tiny_policy.reset()


def test_bad_inputs_are_rejected(tiny_policy, observation):
    missing = dataclasses.replace(observation)
    object.__setattr__(missing, "images", {c: v for c, v in observation.images.items() if c != "CAM_BACK"})
    with pytest.raises(ValueError, match="CAM_BACK"):
        tiny_policy.predict(missing)

    wrong_shape = dataclasses.replace(observation)
    object.__setattr__(wrong_shape, "images", {**observation.images, "CAM_FRONT_LEFT": np.zeros((36, 64, 4), np.uint8)})
    with pytest.raises(ValueError, match="CAM_FRONT_LEFT"):
        tiny_policy.predict(wrong_shape)

    bad_ego = dataclasses.replace(observation, ego=dataclasses.replace(observation.ego))
    object.__setattr__(bad_ego.ego, "speed_mps", math.nan)
    with pytest.raises(ValueError, match="ego.speed_mps"):
        tiny_policy.predict(bad_ego)

    with pytest.raises(ValueError, match="obs: got dict"):
        tiny_policy.predict({"images": {}})
    with pytest.raises(ValueError, match="observations: got an empty"):
        tiny_policy.predict_batch([])
    small = fx.make_observation(np.random.default_rng(0))
    object.__setattr__(small, "images", {c: np.zeros((20, 30, 3), np.uint8) for c in CAMERA_NAMES})
    with pytest.raises(ValueError, match="image shape"):
        tiny_policy.predict_batch([observation, small])


def test_build_fits_the_action_tokenizer(tiny_policy):
    from drive_vla.config import load_config
    from drive_vla.model.config import ModelConfig

    rng = np.random.default_rng(3)
    trajectories = [fx.make_sample(rng, i).targets.trajectory for i in range(16)]
    cfg = load_config(ModelConfig, fx.TINY_YAML, list(fx.TEST_OVERRIDES))
    fitted = DrivingPolicy.build(cfg, fit_trajectories=trajectories).model.action_tokenizer
    default = tiny_policy.model.action_tokenizer
    assert fitted.config.range_x_m != default.config.range_x_m
    assert fitted.round_trip_bound_m < default.round_trip_bound_m
