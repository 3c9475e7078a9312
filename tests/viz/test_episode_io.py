"""Recorded frames: save_observation / load_observation round trip, no pickle, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from drive_vla.episode_io import frame_path, load_observation, save_observation
from drive_vla.types import CAMERA_NAMES, Command, EgoState, Observation


def test_round_trip_is_exact(tmp_path, make_grey_obs):
    base = make_grey_obs()
    rng = np.random.default_rng(3)
    obs = Observation(
        images={c: rng.integers(0, 256, (36, 64, 3), dtype=np.uint8) for c in CAMERA_NAMES},
        intrinsics=base.intrinsics,
        extrinsics=base.extrinsics,
        ego=EgoState(
            speed_mps=7.25, accel_mps2=np.array([0.5, -0.25], np.float32), yaw_rate_rps=0.1, steer=-0.3, source="sim"
        ),
        history=base.history,
        command=Command.LEFT,
        instruction="turn left at the next intersection — ünïcode ok",
        timestamp_s=41.5,
    )
    path = save_observation(frame_path(tmp_path / "ep", 12), obs)
    assert path == tmp_path / "ep" / "frames" / "step_00012.npz" and path.is_file()
    with np.load(path, allow_pickle=False) as data:  # layout the drive loop and other tools rely on
        assert data["intrinsics"].shape == (6, 3, 3) and data["extrinsics"].shape == (6, 4, 4)
        assert data["ego"].shape == (6,) and data["history"].shape == (4, 3)
        assert data["CAM_FRONT"].dtype == np.uint8 and data["CAM_FRONT"].shape == (36, 64, 3)
    back = load_observation(path)
    for cam in CAMERA_NAMES:
        assert np.array_equal(back.images[cam], obs.images[cam])
        assert np.allclose(back.intrinsics[cam], obs.intrinsics[cam])
        assert np.allclose(back.extrinsics[cam], obs.extrinsics[cam])
    assert back.ego.speed_mps == pytest.approx(7.25) and back.ego.steer == pytest.approx(-0.3)
    assert np.allclose(back.ego.accel_mps2, [0.5, -0.25]) and back.ego.source == "sim"
    assert back.command is Command.LEFT and back.instruction == obs.instruction
    assert back.timestamp_s == 41.5 and np.allclose(back.history, obs.history)


def test_suffix_added_and_errors(tmp_path, make_grey_obs):
    assert save_observation(tmp_path / "frame", make_grey_obs()).name == "frame.npz"
    with pytest.raises(ValueError, match="does not exist"):
        load_observation(tmp_path / "missing.npz")
    np.savez(tmp_path / "partial.npz", CAM_FRONT=np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(ValueError, match="missing keys"):
        load_observation(tmp_path / "partial.npz")
    np.savez(tmp_path / "pickled.npz", ego=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="pickle"):
        load_observation(tmp_path / "pickled.npz")
    with pytest.raises(ValueError, match="step"):
        frame_path(tmp_path, -1)
    with pytest.raises(ValueError, match="Observation"):
        save_observation(tmp_path / "x.npz", {"images": {}})
