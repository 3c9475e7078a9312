"""Viz fixtures: a plain grey observation (no figure colour occurs in it) on the nominal rig."""

from __future__ import annotations

import numpy as np
import pytest

from drive_vla import geometry
from drive_vla.types import CAMERA_NAMES, Command, EgoState, Observation


def grey_observation(wh: tuple[int, int] = (64, 36), speed_mps: float = 5.0) -> Observation:
    w, h = wh
    intr, extr = geometry.rig_calibration(w, h)
    return Observation(
        images={cam: np.full((h, w, 3), 100, dtype=np.uint8) for cam in CAMERA_NAMES},
        intrinsics=intr,
        extrinsics=extr,
        ego=EgoState(speed_mps=speed_mps, source="sim"),
        history=np.array([[-10.0, 0.0, 0.0], [-7.5, 0.0, 0.0], [-5.0, 0.0, 0.0], [-2.5, 0.0, 0.0]], dtype=np.float32),
        command=Command.STRAIGHT,
        instruction="keep following the road",
        timestamp_s=3.0,
    )


@pytest.fixture
def grey_obs() -> Observation:
    return grey_observation()


@pytest.fixture
def make_grey_obs():
    return grey_observation
