"""Sensor rig: leaderboard validity, and the CARLA specs reproduce the nuScenes rig's calibration."""

from __future__ import annotations

import math

import carla
import numpy as np
import pytest

from carla_agents.sensor_rig import (
    SensorSpecError,
    camera_specs,
    horizontal_fov_deg,
    rig_calibration,
    sensor_specs,
    validate_sensor_spec,
)
from drive_vla import geometry
from drive_vla.types import CAMERA_NAMES


def test_default_rig_is_valid_for_the_leaderboard():
    specs = sensor_specs(800, 450)
    validate_sensor_spec(specs)
    kinds = [s["type"] for s in specs]
    assert kinds.count("sensor.camera.rgb") == 6
    assert kinds.count("sensor.other.gnss") == kinds.count("sensor.other.imu") == kinds.count("sensor.speedometer") == 1
    assert len({s["id"] for s in specs}) == len(specs)
    for s in specs:
        if "x" in s:
            assert math.sqrt(s["x"] ** 2 + s["y"] ** 2 + s["z"] ** 2) <= 3.0


def test_camera_specs_are_the_nuscenes_mounts_in_carla_axes():
    specs = {s["id"]: s for s in camera_specs(1600, 900)}
    front, front_right, back = specs["CAM_FRONT"], specs["CAM_FRONT_RIGHT"], specs["CAM_BACK"]
    assert (front["x"], front["y"], front["z"]) == pytest.approx((1.70, -0.02, 1.51))  # y flips (left -> right)
    assert front_right["yaw"] == pytest.approx(55.0)  # the rig's -55 deg (CCW) is CARLA's +55 (clockwise)
    assert abs(back["yaw"]) == pytest.approx(180.0)
    assert front["fov"] == pytest.approx(math.degrees(2 * math.atan(800 / 1266.0)), abs=1e-3)  # 64.58 deg
    assert back["fov"] == pytest.approx(89.36, abs=0.01)


def test_spec_calibration_matches_geometry_rig():
    """Intrinsics/extrinsics rebuilt from the CARLA specs equal geometry.rig_calibration at 16:9."""
    specs = sensor_specs(800, 450)
    intr, extr = rig_calibration(specs)
    ref_intr, ref_extr = geometry.rig_calibration(800, 450)
    for cam in CAMERA_NAMES:
        np.testing.assert_allclose(intr[cam], ref_intr[cam], atol=1e-2)
        np.testing.assert_allclose(extr[cam], ref_extr[cam], atol=1e-5)


def test_carla_camera_axes_agree_with_extrinsics():
    """CARLA's own rotation of each spec points the camera where the cam2ego matrix says (y flipped)."""
    specs = camera_specs(64, 36)
    _, extr = rig_calibration(specs)
    for s in specs:
        rot = carla.Rotation(pitch=s["pitch"], yaw=s["yaw"], roll=s["roll"])
        fwd, right = rot.get_forward_vector(), rot.get_right_vector()
        np.testing.assert_allclose(extr[s["id"]][:3, 2], [fwd.x, -fwd.y, fwd.z], atol=1e-6)  # optical axis
        np.testing.assert_allclose(extr[s["id"]][:3, 0], [right.x, -right.y, right.z], atol=1e-6)  # image x


def test_ego_origin_offset_moves_sensors_not_calibration():
    specs = camera_specs(64, 36, ego_origin_in_vehicle_m=(-1.3, 0.0, 0.0))
    assert specs[0]["x"] == pytest.approx(0.40)
    _, extr = rig_calibration(specs, ego_origin_in_vehicle_m=(-1.3, 0.0, 0.0))
    np.testing.assert_allclose(extr["CAM_FRONT"][:3, 3], [1.70, 0.02, 1.51], atol=1e-6)


def test_fov_formula():
    assert horizontal_fov_deg(800.0, 1600) == pytest.approx(90.0)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda s: s.append(dict(s[0])), "duplicates"),
        (lambda s: s.extend({**s[0], "id": f"extra{i}"} for i in range(3)), "at most 8"),
        (lambda s: s.append({**s[-1], "id": "GPS2"}), "at most 1"),
        (lambda s: s[0].update(x=2.5, z=2.0), "<= 3.0 m"),
        (lambda s: s.append({"type": "sensor.opendrive_map", "reading_frequency": 1, "id": "MAP"}), "SENSORS track"),
        (lambda s: s.append({"type": "sensor.camera.depth", "id": "D"}), "type"),
        (lambda s: s[0].update(fov=0.0), "fov"),
        (lambda s: s[1].pop("pitch"), "pose keys"),
    ],
)
def test_validation_rejects_what_the_leaderboard_rejects(mutate, message):
    specs = sensor_specs(64, 36)
    mutate(specs)
    with pytest.raises(SensorSpecError, match=message):
        validate_sensor_spec(specs)
