"""Constant-velocity baselines and the make_baseline registry."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import numpy as np
import pytest

from drive_vla.baselines import BASELINES, make_baseline
from drive_vla.baselines.constant_velocity import ConstantVelocityPlanner, constant_turn_rate_poses
from drive_vla.geometry import rig_calibration
from drive_vla.types import CAMERA_NAMES, EgoState, Observation

INTR, EXTR = rig_calibration(16, 9)


def obs(speed=5.0, yaw_rate=0.0, history=None) -> Observation:
    return Observation(
        images={c: np.zeros((9, 16, 3), np.uint8) for c in CAMERA_NAMES}, intrinsics=INTR, extrinsics=EXTR,
        ego=EgoState(speed_mps=speed, yaw_rate_rps=yaw_rate),
        history=np.zeros((4, 3), np.float32) if history is None else np.asarray(history, np.float32),
    )  # fmt: skip


def test_constant_velocity_is_a_straight_line_at_2hz():
    plan = make_baseline("constant_velocity").predict(obs(speed=4.0, yaw_rate=0.3))
    assert plan.trajectory.xy[:, 0] == pytest.approx([2, 4, 6, 8, 10, 12])
    assert plan.trajectory.xy[:, 1] == pytest.approx(np.zeros(6))
    assert plan.trajectory.yaw_rad == pytest.approx(np.zeros(6))
    assert plan.trajectory.dt_s == 0.5


def test_constant_turn_rate_follows_an_arc():
    # v = pi m/s, w = pi/6 rad/s: radius 6 m, a quarter circle after 3 s
    poses = constant_turn_rate_poses(np.pi, np.pi / 6)
    assert poses[-1] == pytest.approx([6.0, 6.0, np.pi / 2])
    assert np.hypot(poses[:, 0], poses[:, 1] - 6.0) == pytest.approx(np.full(6, 6.0))  # on the circle
    planner = ConstantVelocityPlanner(use_yaw_rate=True, max_yaw_rate_rps=1.0)
    assert planner.predict(obs(speed=np.pi, yaw_rate=np.pi / 6)).trajectory.xy[-1] == pytest.approx([6, 6], abs=1e-5)
    clipped = ConstantVelocityPlanner(use_yaw_rate=True, max_yaw_rate_rps=0.1).motion(obs(yaw_rate=2.0))
    assert clipped == (5.0, pytest.approx(0.1))
    right = make_baseline("constant_turn_rate").predict(obs(speed=5.0, yaw_rate=-0.2)).trajectory.xy
    assert right[-1, 1] < 0  # negative yaw rate turns right (y left is positive)


def test_history_source_estimates_speed_and_turn_rate():
    # 0.5 s ago the ego was 3 m behind and headed 0.1 rad to the right of its current heading
    history = [[-12, 0, -0.4], [-9, 0, -0.3], [-6, 0, -0.2], [-3.0, 0.0, -0.1]]
    speed, rate = ConstantVelocityPlanner(use_yaw_rate=True, source="history").motion(obs(speed=0.0, history=history))
    assert speed == pytest.approx(6.0) and rate == pytest.approx(0.2)
    with pytest.raises(ValueError, match="source"):
        ConstantVelocityPlanner(source="gps")


def test_batch_and_reset():
    planner = make_baseline("constant_velocity")
    plans = planner.predict_batch([obs(1.0), obs(2.0)])
    assert [p.trajectory.xy[-1, 0] for p in plans] == pytest.approx([3.0, 6.0])
    planner.reset()


def test_registry_errors_and_lazy_ego_mlp(monkeypatch):
    with pytest.raises(ValueError, match="constant_velocity.*ego_mlp"):
        make_baseline("transfuser")
    with pytest.raises(ValueError, match="path"):
        make_baseline("ego_mlp")
    with pytest.raises(ValueError, match="no saved weights"):
        make_baseline("constant_velocity", path="x")
    sentinel = object()
    fake = SimpleNamespace(load_ego_mlp=lambda path: (sentinel, path))
    monkeypatch.setitem(sys.modules, "drive_vla.baselines.ego_mlp", fake)
    assert make_baseline("ego_mlp", path="runs/mlp") == (sentinel, "runs/mlp")
    assert set(BASELINES) == {"constant_velocity", "constant_turn_rate", "ego_mlp"}
