"""The speed-limit input: Observation checks, frame and label round trips, the embedded world, CARLA's units."""

from __future__ import annotations

import math

import numpy as np
import pytest

from carla_agents.convert import speed_limit_from_kmh
from drive_vla.data.drivelm import check_label, speed_limit
from drive_vla.episode_io import load_observation, save_observation
from drive_vla.types import CAMERA_NAMES, Batch, EgoState, Observation


def _observation(limit=None) -> Observation:
    return Observation(
        images={c: np.zeros((18, 32, 3), np.uint8) for c in CAMERA_NAMES},
        intrinsics={c: np.eye(3, dtype=np.float32) for c in CAMERA_NAMES},
        extrinsics={c: np.eye(4, dtype=np.float32) for c in CAMERA_NAMES},
        ego=EgoState(speed_mps=5.0),
        speed_limit_mps=limit,
    )


@pytest.mark.parametrize("bad", [math.nan, math.inf, 0.0, -3.0, 1e6])
def test_observation_names_the_field_of_a_bad_speed_limit(bad):
    with pytest.raises(ValueError, match="observation.speed_limit_mps"):
        _observation(bad)


def test_batches_carry_the_limit_and_a_mask_and_frames_keep_it(tmp_path):
    batch = Batch.from_observations([_observation(13.9), _observation()])
    assert batch.speed_limit.tolist() == pytest.approx([13.9, 0.0]) and batch.speed_limit_mask.tolist() == [True, False]
    for obs in (_observation(22.2), _observation()):
        back = load_observation(save_observation(tmp_path / "f", obs))
        assert back.speed_limit_mps == obs.speed_limit_mps


def test_labels_read_the_limit_and_name_a_bad_one():
    assert speed_limit({"speed_limit_mps": 8.5}) == 8.5 and speed_limit({}) is None
    check_label({"speed_limit_mps": 8.5})
    for bad in ("fast", True, -1.0, 500.0):
        with pytest.raises(ValueError, match=r"labels\[t\].speed_limit_mps"):
            check_label({"speed_limit_mps": bad}, "labels[t]")


def test_carla_kmh_becomes_mps_and_garbage_becomes_unknown_with_a_logged_fault(caplog):
    assert speed_limit_from_kmh(50.0) == pytest.approx(13.888, abs=1e-3)
    assert speed_limit_from_kmh(None) is None and "speed_limit" not in caplog.text
    for bad in ("x", math.nan, 0.0, -30.0, 1e9):
        with caplog.at_level("WARNING"):
            assert speed_limit_from_kmh(bad) is None
        assert f"speed_limit: got {bad!r} km/h" in caplog.text
