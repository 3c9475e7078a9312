"""Training fixtures: tiny synthetic Samples (ego motion along arcs), recipe overrides for tiny runs."""

from __future__ import annotations

import dataclasses
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from drive_vla.data.labels import command_from_trajectory, instruction_for_command, meta_action
from drive_vla.geometry import rig_calibration
from drive_vla.types import (
    CAMERA_NAMES,
    FUTURE_STEPS,
    HISTORY_STEPS,
    STEP_DT_S,
    Control,
    EgoState,
    Observation,
    Sample,
    SampleMeta,
    Targets,
    Trajectory,
)

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "fixtures"))
TRAIN_CONFIGS = REPO / "configs" / "train"
IMAGE_HW = (36, 64)


def arc_poses(speed_mps: float, yaw_rate_rps: float, times_s: np.ndarray) -> np.ndarray:
    """(T, 3) poses [x, y, yaw] of constant speed and yaw rate from the origin, ego frame."""
    out = []
    for t in times_s:
        yaw = yaw_rate_rps * t
        if abs(yaw_rate_rps) < 1e-6:
            x, y = speed_mps * t, 0.0
        else:
            r = speed_mps / yaw_rate_rps
            x, y = r * math.sin(yaw), r * (1.0 - math.cos(yaw))
        out.append((x, y, yaw))
    return np.asarray(out, dtype=np.float32)


def make_sample(
    i: int,
    rng: np.random.Generator,
    hw: tuple[int, int] = IMAGE_HW,
    qa: bool = False,
    explanation: bool = False,
    control: bool = True,
    mask_tail: bool = False,
) -> Sample:
    """One synthetic Sample: the ego drives an arc; images are noise with a brightness that encodes speed."""
    h, w = hw
    speed = float(rng.uniform(2.0, 12.0))
    yaw_rate = float(rng.choice([-0.25, 0.0, 0.0, 0.25]) + rng.normal(0, 0.02))
    future = arc_poses(speed, yaw_rate, STEP_DT_S * np.arange(1, FUTURE_STEPS + 1))
    history = arc_poses(speed, yaw_rate, -STEP_DT_S * np.arange(HISTORY_STEPS, 0, -1))
    mask = np.ones(FUTURE_STEPS, dtype=bool)
    if mask_tail:
        mask[-2:] = False
    intr, extr = rig_calibration(w, h)
    level = int(np.clip(speed * 20, 0, 255))
    images = {c: np.clip(rng.integers(0, 40, (h, w, 3)) + level, 0, 255).astype(np.uint8) for c in CAMERA_NAMES}
    cmd = command_from_trajectory(future[:, :2], mask)
    obs = Observation(
        images=images,
        intrinsics=intr,
        extrinsics=extr,
        ego=EgoState(speed_mps=speed, yaw_rate_rps=yaw_rate, steer=float(np.clip(yaw_rate, -1, 1)), source="sim"),
        history=history,
        command=cmd,
        instruction=instruction_for_command(cmd),
        timestamp_s=float(i) * STEP_DT_S,
    )
    targets = Targets(
        trajectory=Trajectory(xy=future[:, :2].copy(), yaw_rad=future[:, 2].copy(), mask=mask),
        control=Control(steer=float(np.clip(yaw_rate, -1, 1)), throttle=0.3, brake=0.0) if control else None,
        meta_action=meta_action(speed, future[:, :2], mask),
        explanation=f"I {meta_action(speed, future[:, :2], mask)} because the road is clear." if explanation else None,
        qa=(("What is the ego speed?", f"About {speed:.0f} m/s."),) if qa else (),
    )
    return Sample(observation=obs, targets=targets, meta=SampleMeta(token=f"tok{i:04d}", scene=f"scene-{i // 8}"))


def make_samples(n: int, seed: int = 0, **kwargs) -> list[Sample]:
    rng = np.random.default_rng(seed)
    return [make_sample(i, rng, **kwargs) for i in range(n)]


@pytest.fixture(scope="session")
def tiny_samples() -> list[Sample]:
    """24 labelled samples (QA, explanations, controls)."""
    return make_samples(24, seed=0, qa=True, explanation=True)


@pytest.fixture(scope="session")
def tiny_val_samples() -> list[Sample]:
    return make_samples(8, seed=1, qa=True, explanation=True)


@pytest.fixture(scope="session")
def unlabelled_samples() -> list[Sample]:
    """Samples without QA or explanations (trajectories and controls only)."""
    return make_samples(12, seed=2)


# A VLA small enough for a CPU step in well under a second (hidden 32, 2 layers, 4 visual tokens).
TINY_MODEL = {
    "vision": {"image_hw": [16, 32], "dim": 32, "num_queries": 4, "resampler_heads": 2},
    "lm": {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "num_kv_heads": 1, "intermediate_size": 64},
    "planner_head": {"hidden": 32},
    "action_tokenizer_kwargs": {"bins_x": 64, "bins_y": 64},
    "max_explanation_tokens": 8,
}
TINY_MODEL_OVERRIDES = ["model.path=configs/model/tiny.yaml", f"model.overrides={TINY_MODEL}"]

# Overrides that shrink any recipe to a few CPU seconds (tiny batches, single CPU device, no plot/tensorboard).
TINY_VLA_OVERRIDES = [
    "trainer.max_steps=3",
    "trainer.max_epochs=-1",
    "trainer.limit_val_batches=1",
    "data.batch_size=4",
    "data.num_workers=0",
    "optim.warmup_steps=1",
    "logging.progress_bar=false",
    "logging.tensorboard=false",
    "logging.plot=false",
    "checkpoint.every_n_steps=100",
    "trainer.accelerator=cpu",
    "trainer.strategy=auto",
    "trainer.devices=1",
    "trainer.precision=32-true",
    "trainer.val_every_n_steps=3",
]


@pytest.fixture(scope="session")
def sample_factory():
    """``make_samples(n, seed=0, qa=False, explanation=False, control=True, mask_tail=False, hw=IMAGE_HW)``."""
    return make_samples


@pytest.fixture(scope="session")
def train_configs() -> Path:
    return TRAIN_CONFIGS


@pytest.fixture(scope="session")
def tiny_overrides() -> list[str]:
    """Recipe overrides for a few-second CPU run (model section not included)."""
    return list(TINY_VLA_OVERRIDES)


@pytest.fixture(scope="session")
def tiny_model_overrides() -> list[str]:
    """Recipe overrides that select the tiny VLA (for recipes without init_from)."""
    return list(TINY_MODEL_OVERRIDES)


@pytest.fixture(scope="session")
def tiny_model_config():
    from drive_vla.config import from_dict, read_yaml
    from drive_vla.model.config import ModelConfig
    from drive_vla.training.config import deep_merge

    # the byte text tokenizer, so tests can build it without data (training runs fit the "corpus" one)
    byte_text = {"lm": {**TINY_MODEL["lm"], "text_tokenizer": "byte"}}
    return from_dict(
        ModelConfig, deep_merge(read_yaml(REPO / "configs" / "model" / "tiny.yaml"), {**TINY_MODEL, **byte_text})
    )


@pytest.fixture(scope="session")
def tiny_policy_dir(tmp_path_factory, tiny_model_config, tiny_samples) -> Path:
    """An exported tiny DrivingPolicy (random weights), for recipes that start from init_from."""
    from drive_vla.data.datamodule import SampleDataset
    from drive_vla.policy import DrivingPolicy

    out = tmp_path_factory.mktemp("policy") / "policy"
    cfg = dataclasses.replace(tiny_model_config, lm=dataclasses.replace(tiny_model_config.lm, text_tokenizer="corpus"))
    trajectories = [s.targets.trajectory for s in tiny_samples]
    DrivingPolicy.build(cfg, trajectories, fit_texts=SampleDataset(tiny_samples).texts()).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def synthetic_dataset(tmp_path_factory) -> tuple[Path, str]:
    """A tiny nuScenes-format dataset on disk (2 train scenes + 1 val scene, 8 keyframes each, QA on one sample)."""
    import nuscenes_factory

    root = tmp_path_factory.mktemp("synthetic") / "nuscenes"
    nuscenes_factory.write_synthetic_dataset(root, scenes=3, n_keyframes=8)
    return root, "v1.0-synthetic"
