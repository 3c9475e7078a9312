"""Failure-monitor checks as pure functions, on hand-made plans and poses; the fallback's speed cap."""

from __future__ import annotations

import math

import numpy as np
import pytest

from drive_vla.monitor import (
    MonitorConfig,
    cap_speed_s_m,
    cap_trajectory_speed,
    carry_plan,
    check_drivable,
    check_head_tokens,
    check_input_fault,
    check_plan_jump,
    plan_jump_m,
    trajectory_gap_m,
)
from drive_vla.types import Trajectory

CFG = MonitorConfig()
STRAIGHT_2MPS = np.stack([np.arange(1, 7) * 1.0, np.zeros(6)], axis=1)  # 2 m/s, waypoints every 0.5 s


def test_consistent_plan_after_moving_does_not_jump():
    # 0.5 s later the car is 1 m further on and plans the same 2 m/s: the carried plan matches exactly.
    jump = plan_jump_m(STRAIGHT_2MPS, 0.5, (0.0, 0.0, 0.0), STRAIGHT_2MPS, 0.5, (1.0, 0.0, 0.0), 0.5)
    assert jump == pytest.approx(0.0, abs=1e-9)
    assert not check_plan_jump(jump, CFG).fired


def test_lateral_jump_fires_with_its_value():
    new = STRAIGHT_2MPS + [0.0, 5.0]
    jump = plan_jump_m(STRAIGHT_2MPS, 0.5, (0.0, 0.0, 0.0), new, 0.5, (1.0, 0.0, 0.0), 0.5)
    assert jump == pytest.approx(5.0)
    result = check_plan_jump(jump, CFG)
    assert result.fired and result.value == pytest.approx(5.0) and result.threshold == 4.0 and result.unit == "m"


def test_plan_is_carried_through_rotation_and_time():
    # The car turned 90 degrees left in place: the old plan, straight ahead, is now to the right (y < 0).
    times, xy = carry_plan(STRAIGHT_2MPS, 0.5, (0.0, 0.0, 0.0), (0.0, 0.0, math.pi / 2), 1.0)
    np.testing.assert_allclose(times, [0.5, 1.0, 1.5, 2.0])  # points at 1.5 s ... 3.0 s, now 1 s later
    np.testing.assert_allclose(xy, [[0.0, -3.0], [0.0, -4.0], [0.0, -5.0], [0.0, -6.0]], atol=1e-9)


def test_only_the_overlapping_horizon_counts():
    # The new plan differs only in its last waypoint (3.0 s), which the previous plan (to 2.5 s now) lacks.
    new = STRAIGHT_2MPS.copy()
    new[5] += [0.0, 9.0]
    jump = plan_jump_m(STRAIGHT_2MPS, 0.5, (0.0, 0.0, 0.0), new, 0.5, (1.0, 0.0, 0.0), 0.5)
    assert jump == pytest.approx(0.0, abs=1e-9)
    assert plan_jump_m(STRAIGHT_2MPS, 0.5, (0, 0, 0), new, 0.5, (0, 0, 0), 3.0) is None  # nothing left to compare
    assert not check_plan_jump(None, CFG).fired


def test_head_tokens_gap():
    gap = trajectory_gap_m(STRAIGHT_2MPS, STRAIGHT_2MPS + np.array([[0.0, 0.0]] * 5 + [[3.0, 4.0]]))
    assert gap == pytest.approx(5.0)
    assert check_head_tokens(gap, CFG).fired and not check_head_tokens(3.9, CFG).fired
    with pytest.raises(ValueError, match="expected two equal"):
        trajectory_gap_m(STRAIGHT_2MPS, STRAIGHT_2MPS[:4])


def test_drivable_fires_on_the_first_off_lane_waypoint_within_the_horizon():
    result = check_drivable(np.array([True, True, False, True, True, False]), 0.5, CFG)
    assert result.fired and result.value == pytest.approx(1.5)
    late = check_drivable(np.array([True, True, True, True, False, False]), 0.5, CFG)  # 2.5 s: beyond 2 s
    assert not late.fired and late.value is None


def test_input_fault_check():
    assert check_input_fault("no observation").fired and check_input_fault("no observation").detail
    assert not check_input_fault(None).fired


def test_speed_cap_by_hand():
    # 20 m/s slowing at 3 m/s^2 towards 5 m/s: s(t) = 20 t - 1.5 t^2 until t = 5 s.
    np.testing.assert_allclose(cap_speed_s_m(np.array([0.5, 3.0]), 20.0, 5.0, 3.0), [9.625, 46.5])
    np.testing.assert_allclose(
        cap_speed_s_m(np.array([1.0, 6.0]), 20.0, 5.0, 3.0), [18.5, 67.5]
    )  # 62.5 m by 5 s, then 5 m/s
    np.testing.assert_allclose(cap_speed_s_m(np.array([1.0]), 2.0, 5.0, 3.0), [5.0])  # slower: 5 m/s allowed
    fast = Trajectory(np.stack([np.arange(1, 7) * 10.0, np.zeros(6)], axis=1).astype(np.float32))
    capped = cap_trajectory_speed(fast, 20.0, CFG)
    np.testing.assert_allclose(capped.xy[:, 0], [9.625, 18.5, 26.625, 34.0, 40.625, 46.5], rtol=1e-6)
    slow = Trajectory(STRAIGHT_2MPS.astype(np.float32))
    np.testing.assert_allclose(cap_trajectory_speed(slow, 2.0, CFG).xy, slow.xy)  # already slow: unchanged


def test_speed_cap_keeps_the_path():
    # A quarter circle of radius 20 m at 15 m/s: capped waypoints stay on the circle and move back along it.
    angles = np.arange(1, 7) * (7.5 / 20.0)
    xy = np.stack([20 * np.sin(angles), 20 * (1 - np.cos(angles))], axis=1).astype(np.float32)
    capped = cap_trajectory_speed(Trajectory(xy, angles.astype(np.float32)), 15.0, CFG)
    radius = np.hypot(capped.xy[:, 0], capped.xy[:, 1] - 20.0)
    np.testing.assert_allclose(radius, 20.0, atol=0.4)  # chords sit inside the arc: sagitta 20(1 - cos 0.1875) m
    assert np.all(np.diff(np.arctan2(capped.xy[:, 0], 20.0 - capped.xy[:, 1])) > 0)
    assert np.all(np.hypot(*capped.xy.T) < np.hypot(*xy.T))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("plan_jump_m", 0.0, "> 0"), ("hold_s", -1.0, ">= 0"), ("fallback_decel_mps2", float("nan"), "finite")],
)
def test_config_errors_name_the_field(field, value, message):
    with pytest.raises(ValueError, match=rf"monitor\.{field}: got .*{message}"):
        MonitorConfig(**{field: value})
