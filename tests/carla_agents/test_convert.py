"""Conversions: BGRA -> RGB, CARLA poses/vectors/IMU -> ego frame, input_data parsing, history, controls."""

from __future__ import annotations

import math

import carla
import numpy as np
import pytest

from carla_agents.convert import (
    PoseHistory,
    bgra_to_rgb,
    build_observation,
    carla_pose_to_local,
    carla_vector_to_ego,
    ego_state_from_sensors,
    imu_to_ego,
    parse_input_data,
    to_vehicle_control,
    transform_to_local_pose,
)
from carla_agents.sensor_rig import GNSS_ID, IMU_ID, SPEED_ID, rig_calibration, sensor_specs
from drive_vla.types import CAMERA_NAMES, Command, Control


def test_bgra_to_rgb_reorders_and_drops_alpha():
    bgra = np.zeros((2, 3, 4), dtype=np.uint8)
    bgra[0, 0] = [10, 20, 30, 255]  # B, G, R, A
    rgb = bgra_to_rgb(bgra)
    assert rgb.shape == (2, 3, 3) and rgb.dtype == np.uint8 and rgb.flags["C_CONTIGUOUS"]
    assert rgb[0, 0].tolist() == [30, 20, 10]
    for bad in (np.zeros((2, 3, 3), np.uint8), np.zeros((2, 3, 4), np.float32), "image"):
        with pytest.raises(ValueError, match="BGRA"):
            bgra_to_rgb(bad)


def test_carla_pose_to_local_flips_y_and_yaw():
    # CARLA yaw 90 deg faces +y = south; in the right-handed local frame that is -90 deg at y = -5
    np.testing.assert_allclose(carla_pose_to_local(3.0, 5.0, 90.0), [3.0, -5.0, -math.pi / 2])
    tf = carla.Transform(carla.Location(x=1.0, y=-2.0, z=0.5), carla.Rotation(yaw=-30.0))
    np.testing.assert_allclose(transform_to_local_pose(tf), [1.0, 2.0, math.radians(30.0)], atol=1e-6)


def test_world_velocity_to_ego_frame():
    # heading south (CARLA yaw 90), moving south at 4 m/s and drifting east (car's left) at 1 m/s
    yaw_local = carla_pose_to_local(0, 0, 90.0)[2]
    forward_left = carla_vector_to_ego(1.0, 4.0, yaw_local)
    np.testing.assert_allclose(forward_left, [4.0, 1.0], atol=1e-9)


def test_imu_to_ego_flips_lateral_and_yaw_rate():
    accel, yaw_rate = imu_to_ego([1.5, 0.5, 9.81, 0.0, 0.0, 0.2, 0.0])
    np.testing.assert_allclose(accel, [1.5, -0.5])  # CARLA +y is the car's right
    assert yaw_rate == pytest.approx(-0.2)  # CARLA +z rotation turns right (clockwise from above)
    accel, yaw_rate = imu_to_ego([500.0, 0.0, 0.0, 0.0, 0.0, -40.0, 0.0])  # a collision spike
    assert accel[0] == 50.0 and yaw_rate == 10.0


def test_parse_recorded_input_data(recorded):
    data = recorded.input_data(compass_rad=float("nan"))
    readings = parse_input_data(data)
    assert set(readings.images) == set(CAMERA_NAMES)
    bgra = data["CAM_FRONT"][1]
    np.testing.assert_array_equal(readings.images["CAM_FRONT"], bgra[..., [2, 1, 0]])
    assert readings.speed_mps == 5.0 and readings.frame == 100
    assert math.isnan(readings.compass_rad)  # NaN compass is allowed: the agent handles it


@pytest.mark.parametrize(
    ("breaks", "message"),
    [
        (lambda d: d.pop("CAM_BACK"), "missing sensor 'CAM_BACK'"),
        (lambda d: d.update({SPEED_ID: (1, {"speed": float("nan")})}), "speed"),
        (lambda d: d.update({GNSS_ID: (1, np.array([np.nan, 8.0, 0.0]))}), "lat, lon"),
        (lambda d: d.update({IMU_ID: (1, np.array([np.nan, 0, 0, 0, 0, 0, 0.0]))}), "accel, gyro"),
        (lambda d: d.update({"CAM_FRONT": (1, np.zeros((36, 64, 3), np.uint8))}), "BGRA"),
        (lambda d: d.update({"CAM_BACK": (1, np.zeros((10, 64, 4), np.uint8))}), "like the others"),
        (lambda d: d.update({SPEED_ID: {"speed": 1.0}}), "pair"),
    ],
)
def test_bad_sensor_data_raises(recorded, breaks, message):
    data = recorded.input_data()
    breaks(data)
    with pytest.raises(ValueError, match=message):
        parse_input_data(data)


def test_ego_state_and_observation_from_recorded_frame(recorded):
    readings = parse_input_data(recorded.input_data(gyro_z=0.1))
    ego = ego_state_from_sensors(readings.speed_mps, readings.imu, steer=0.2)
    assert ego.source == "sensors" and ego.yaw_rate_rps == pytest.approx(-0.1) and ego.steer == 0.2
    intr, extr = rig_calibration(sensor_specs(*recorded.hw[::-1]))
    obs = build_observation(readings.images, intr, extr, ego, np.zeros((4, 3)), Command.LEFT, "turn left", 1.5)
    assert obs.image_hw == recorded.hw and obs.command is Command.LEFT
    assert obs.intrinsics["CAM_FRONT"][0, 0] == pytest.approx(1266.0 * 64 / 1600, abs=1e-2)


def test_pose_history_samples_at_2hz_in_the_ego_frame():
    hist = PoseHistory()
    np.testing.assert_array_equal(hist.in_ego_frame(0.0, [0, 0, 0]), np.zeros((4, 3)))
    for i in range(61):  # 3 s at 20 Hz, driving east at 2 m/s
        t = i * 0.05
        hist.add(t, [2.0 * t, 0.0, 0.0])
    now = [6.0, 0.0, 0.0]
    past = hist.in_ego_frame(3.0, now)
    np.testing.assert_allclose(past[:, 0], [-4.0, -3.0, -2.0, -1.0], atol=1e-6)  # -2.0 ... -0.5 s
    # at the start of an episode the first pose repeats (standing still)
    fresh = PoseHistory()
    fresh.add(0.0, [1.0, 1.0, 0.5])
    np.testing.assert_allclose(fresh.in_ego_frame(0.5, [1.0, 1.0, 0.5]), np.zeros((4, 3)), atol=1e-9)


def test_to_vehicle_control_flips_steer():
    vc = to_vehicle_control(Control(steer=0.25, throttle=0.5, brake=0.0))
    assert isinstance(vc, carla.VehicleControl)
    assert vc.steer == pytest.approx(-0.25) and vc.throttle == pytest.approx(0.5) and not vc.reverse


def test_observation_from_recorded_input_data_in_one_call(recorded):
    from carla_agents.convert import observation_from_input_data

    data = recorded.input_data(speed_mps=7.5, gyro_z=-0.3)
    intr, extr = rig_calibration(sensor_specs(*recorded.hw[::-1]))
    obs = observation_from_input_data(data, intr, extr, Command.RIGHT, "turn right at the next intersection", 3.0)
    assert obs.ego.speed_mps == 7.5 and obs.ego.yaw_rate_rps == pytest.approx(0.3)
    assert obs.command is Command.RIGHT and obs.timestamp_s == 3.0
    np.testing.assert_array_equal(obs.images["CAM_BACK"], data["CAM_BACK"][1][..., 2::-1])
