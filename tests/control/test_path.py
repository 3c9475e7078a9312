"""Path geometry for the controllers, against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from drive_vla.control.path import (
    aim_point,
    curve_speed_mps,
    desired_speed_mps,
    odometry_step,
    path_length_m,
    timed_path,
)
from drive_vla.control.pid import WindowedPID
from drive_vla.types import Trajectory


def test_timed_path_prepends_origin_and_drops_masked_points():
    traj = Trajectory(
        np.array([[1, 0], [2, 0], [9, 9], [4, 0], [5, 0], [6, 0]], dtype=np.float32),
        mask=np.array([True, True, False, True, True, True]),
    )
    times, xy = timed_path(traj)
    assert times.tolist() == [0.0, 0.5, 1.0, 2.0, 2.5, 3.0]
    assert xy[:, 0].tolist() == [0, 1, 2, 4, 5, 6]


def test_desired_speed_between_plan_times():
    times = np.array([0.0, 0.5, 1.0, 1.5])
    xy = np.array([[0, 0], [1, 0], [3, 0], [6, 0]], dtype=float)  # 2, 4, 6 m/s segments
    assert desired_speed_mps(times, xy, 0.5, 1.0) == pytest.approx(4.0)
    assert desired_speed_mps(times, xy, 0.25, 0.75) == pytest.approx((0.5 + 1.0) / 0.5)  # x: 0.5 -> 1 -> 2 m
    assert desired_speed_mps(times, xy, 1.0, 5.0) == pytest.approx(6.0)  # clamped to the horizon
    assert desired_speed_mps(times, xy, 2.0, 2.5) == 0.0  # stale plan


def test_aim_point_on_polyline_and_extension():
    xy = np.array([[0, 0], [3, 0], [3, 4]], dtype=float)
    assert aim_point(xy, 2.0) == pytest.approx([2.0, 0.0])
    assert aim_point(xy, 5.0) == pytest.approx([3.0, 2.0])
    assert aim_point(xy, 9.0) == pytest.approx([3.0, 6.0])  # extended along the last segment
    # car already 1 m along the path (plan aged): aim measured from the closest point
    assert aim_point(xy - np.array([1.0, 0.0]), 1.5) == pytest.approx([1.5, 0.0])
    assert path_length_m(xy) == pytest.approx(7.0)


def test_odometry_step_turns_left_with_positive_yaw_rate():
    pose = np.zeros(3)
    for _ in range(100):
        pose = odometry_step(pose, 1.0, math.pi / 2, 0.01)  # quarter circle of radius 2/pi in 1 s
    r = 1.0 / (math.pi / 2)
    assert pose == pytest.approx([r, r, math.pi / 2], abs=1e-3)


def test_windowed_pid_terms():
    pid = WindowedPID(kp=2.0, ki=1.0, kd=0.5, window_s=0.2, tuned_dt_s=0.05)  # window of 4 steps
    assert pid.step(1.0, 0.05) == pytest.approx(2.0 + 1.0 / 4 + 0.5 * 1.0)
    assert pid.step(1.0, 0.05) == pytest.approx(2.0 + 2.0 / 4 + 0.0)
    pid.reset()
    # at 10 Hz the window is 2 steps and the derivative is halved per step
    assert pid.step(1.0, 0.1) == pytest.approx(2.0 + 1.0 / 2 + 0.5 * 1.0 * 0.5)


def test_curve_speed_is_the_lateral_bound_plus_the_braking_allowance():
    """On an arc of radius R sampled every 5 m the first bend is 5 m ahead: sqrt(a R + 2 b 5)."""
    radius, a_lat, decel = 22.0, 2.0, 3.0
    s = np.arange(0.0, 31.0, 5.0)
    arc = np.stack([radius * np.sin(s / radius), radius * (1 - np.cos(s / radius))], axis=1)
    # consecutive chords turn by the central angle 5/R over a chord 2 R sin(5 / 2R) long
    chord = 2 * radius * math.sin(5.0 / (2 * radius))
    expected = math.sqrt(a_lat * chord / (5.0 / radius) + 2 * decel * chord)
    assert curve_speed_mps(arc, a_lat, decel) == pytest.approx(expected, rel=1e-9)
    assert expected == pytest.approx(math.sqrt(a_lat * radius + 2 * decel * 5.0), rel=2e-3)
    mirrored = arc * np.array([1.0, -1.0])  # a right bend is capped alike
    assert curve_speed_mps(mirrored, a_lat, decel) == pytest.approx(curve_speed_mps(arc, a_lat, decel))
    assert curve_speed_mps(np.stack([s, 0 * s], axis=1), a_lat, decel) == math.inf  # straight: no cap
    assert curve_speed_mps(arc[:2], a_lat, decel) == math.inf  # one segment has no bend
    # a slow plan's 0.3 m steps point anywhere: they are not read as a hairpin
    jitter = np.array([[0.0, 0.0], [0.3, 0.0], [0.3, 0.3], [0.6, 0.3]])
    assert curve_speed_mps(jitter, a_lat, decel) == math.inf
