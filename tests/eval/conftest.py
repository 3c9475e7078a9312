"""Tiny Samples and a list-backed reader for the open-loop runner tests."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from drive_vla.baselines.constant_velocity import constant_turn_rate_poses
from drive_vla.geometry import rig_calibration
from drive_vla.types import CAMERA_NAMES, Boxes, EgoState, Observation, Sample, SampleMeta, Targets, Trajectory

_INTR, _EXTR = rig_calibration(16, 9)
_IMAGES = {c: np.zeros((9, 16, 3), np.uint8) for c in CAMERA_NAMES}


def make_sample(
    token: str,
    scene: str = "scene-a",
    speed_mps: float = 5.0,
    yaw_rate_rps: float = 0.0,
    future_poses: np.ndarray | None = None,
    mask: Sequence[bool] | None = None,
    boxes: Sequence[Boxes] | None = None,
    timestamp_s: float = 0.0,
    meta_action: str | None = None,
    explanation: str | None = None,
) -> Sample:
    """A Sample whose future (default) is the constant-turn-rate extrapolation of its ego state."""
    poses = constant_turn_rate_poses(speed_mps, yaw_rate_rps) if future_poses is None else np.asarray(future_poses)
    traj = Trajectory(
        xy=poses[:, :2].astype(np.float32),
        yaw_rad=poses[:, 2].astype(np.float32),
        mask=np.ones(6, bool) if mask is None else np.asarray(mask, bool),
    )
    obs = Observation(
        images=_IMAGES, intrinsics=_INTR, extrinsics=_EXTR,
        ego=EgoState(speed_mps=speed_mps, yaw_rate_rps=yaw_rate_rps), timestamp_s=timestamp_s,
    )  # fmt: skip
    targets = Targets(
        trajectory=traj, meta_action=meta_action, explanation=explanation,
        future_boxes=tuple(boxes) if boxes is not None else tuple(Boxes.empty() for _ in range(6)),
    )  # fmt: skip
    return Sample(obs, targets, SampleMeta(token=token, scene=scene))


def ego_box(x_m: float, y_m: float, length: float, width: float, category: str, yaw_rad: float = 0.0) -> Boxes:
    """One box in the ego frame (x forward, y left)."""
    return Boxes(
        np.array([[x_m, y_m, 0.8]], np.float32), np.array([[length, width, 1.6]], np.float32),
        np.array([yaw_rad], np.float32), category=(category,), instance=("agent-0",),
    )  # fmt: skip


class ListReader:
    """The reader interface (len, [i], tokens, split) over a list of Samples."""

    def __init__(self, samples: Sequence[Sample], split: str = "val") -> None:
        self.samples = list(samples)
        self.split = split
        self.version = "v1.0-test"

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> Sample:
        return self.samples[i]

    @property
    def tokens(self) -> list[str]:
        return [s.meta.token for s in self.samples]


@pytest.fixture
def sample_factory():
    return make_sample


@pytest.fixture
def box_factory():
    return ego_box


@pytest.fixture
def reader_factory():
    return ListReader
