"""Fixtures for model tests: tiny configs and synthetic samples (random small images, simple trajectories)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from drive_vla.config import load_config
from drive_vla.model.config import ModelConfig
from drive_vla.types import (
    CAMERA_NAMES,
    FUTURE_STEPS,
    Command,
    Control,
    EgoState,
    Observation,
    Sample,
    SampleMeta,
    Targets,
    Trajectory,
)

TINY_YAML = Path(__file__).resolve().parents[2] / "configs" / "model" / "tiny.yaml"
IMAGE_HW = (36, 64)

# Shrinks configs/model/tiny.yaml to test size: hidden 32, 2 layers, 4 visual tokens, few bins; the byte
# text tokenizer, so a policy builds without fit texts (tests/model/test_text_tokenizer.py covers "corpus").
TEST_OVERRIDES = (
    "lm.text_tokenizer=byte",
    "lm.hidden_size=32",
    "lm.num_layers=2",
    "lm.num_heads=4",
    "lm.num_kv_heads=2",
    "lm.intermediate_size=64",
    "lm.max_position_embeddings=512",
    "vision.backbone=lcnet_035",
    "vision.image_hw=[36, 64]",
    "vision.dim=32",
    "vision.num_queries=4",
    "planner_head.hidden=32",
    "action_tokenizer_kwargs={bins_x: 64, bins_y: 32}",
    "control_tokenizer_kwargs={steer_bins: 9, throttle_bins: 5, brake_bins: 5}",
    "max_explanation_tokens=12",
    "system_prompt=Drive.",
)


@pytest.fixture
def tiny_config() -> Callable[..., ModelConfig]:
    """``tiny_config(*overrides)``: the test-size model config, with extra ``a.b=v`` overrides."""

    def make(*overrides: str) -> ModelConfig:
        return load_config(ModelConfig, TINY_YAML, [*TEST_OVERRIDES, *overrides])

    return make


def make_observation(
    rng: np.random.Generator, instruction: str = "keep following the road", speed_mps: float | None = None
) -> Observation:
    h, w = IMAGE_HW
    return Observation(
        images={c: rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for c in CAMERA_NAMES},
        intrinsics={c: np.array([[w / 2, 0, w / 2], [0, w / 2, h / 2], [0, 0, 1]], np.float32) for c in CAMERA_NAMES},
        extrinsics={c: np.eye(4, dtype=np.float32) for c in CAMERA_NAMES},
        ego=EgoState(
            speed_mps=float(rng.uniform(2.0, 10.0)) if speed_mps is None else speed_mps,
            accel_mps2=np.zeros(2, np.float32),
        ),
        history=np.stack([np.linspace(-8.0, -2.0, 4), np.zeros(4), np.zeros(4)], axis=1).astype(np.float32),
        command=Command.STRAIGHT,
        instruction=instruction,
    )


def make_sample(rng: np.random.Generator, i: int, mask: np.ndarray | None = None) -> Sample:
    """A sample driving at a random speed along a gentle arc, with control, explanation and a QA pair."""
    speed = float(rng.uniform(2.0, 10.0))
    curv = float(rng.uniform(-0.05, 0.05))
    t = np.arange(1, FUTURE_STEPS + 1) * 0.5
    s = speed * t
    xy = np.stack([s, 0.5 * curv * s**2], axis=1).astype(np.float32)
    turn = "left" if curv > 0 else "right"
    obs = make_observation(rng, instruction=f"follow the road and bear {turn}", speed_mps=speed)
    targets = Targets(
        trajectory=Trajectory(xy=xy, mask=np.ones(FUTURE_STEPS, bool) if mask is None else mask),
        control=Control(steer=float(np.clip(curv * 10, -1, 1)), throttle=0.4, brake=0.0),
        explanation=f"road bends {turn}",
        qa=(("Is anything ahead?", "no"),),
    )
    return Sample(observation=obs, targets=targets, meta=SampleMeta(token=f"s{i}"))


@pytest.fixture
def samples() -> list[Sample]:
    rng = np.random.default_rng(1)
    return [make_sample(rng, i) for i in range(4)]


@pytest.fixture
def observation() -> Observation:
    return make_observation(np.random.default_rng(2))


@pytest.fixture
def tiny_yaml_and_overrides() -> tuple[Path, list[str]]:
    """configs/model/tiny.yaml and the overrides that shrink it to test size (for CLI-style callers)."""
    return TINY_YAML, list(TEST_OVERRIDES)


@pytest.fixture
def fit_one_loss() -> Callable[..., tuple[float, float]]:
    """``fit_one_loss(model, batch, key, steps)``: Adam on ``model.losses(batch)[key]`` alone -> (first, last) loss."""
    return _fit_one_loss


def _fit_one_loss(model, batch, key: str, steps: int, lr: float = 3e-3) -> tuple[float, float]:
    import torch

    opt = torch.optim.Adam(model.parameters(), lr=lr)
    first = last = None
    for _ in range(steps):
        loss = model.losses(batch)[key]
        last = float(loss.detach())
        first = last if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    return first, last
