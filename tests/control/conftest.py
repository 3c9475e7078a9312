"""Fixtures for controller tests: plan builders and a tiny kinematic car."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from drive_vla.types import Control, EgoState, Plan, Trajectory


def straight_plan(speed_mps: float, steps: int = 6, dt_s: float = 0.5) -> Plan:
    x = speed_mps * dt_s * np.arange(1, steps + 1)
    return Plan(Trajectory(np.stack([x, np.zeros(steps)], axis=1).astype(np.float32)))


def arc_plan(speed_mps: float, radius_m: float, steps: int = 6, dt_s: float = 0.5) -> Plan:
    """Waypoints on a circle; radius > 0 turns left (y left), < 0 turns right."""
    s = speed_mps * dt_s * np.arange(1, steps + 1)
    theta = s / abs(radius_m)
    x = abs(radius_m) * np.sin(theta)
    y = math.copysign(1.0, radius_m) * abs(radius_m) * (1 - np.cos(theta))
    return Plan(Trajectory(np.stack([x, y], axis=1).astype(np.float32)))


def ego(speed_mps: float = 0.0, yaw_rate_rps: float = 0.0) -> EgoState:
    return EgoState(speed_mps=speed_mps, yaw_rate_rps=yaw_rate_rps, source="sim")


class KinematicCar:
    """Point-mass longitudinal model with a bicycle yaw (full steer = 70 deg at the wheels, as CARLA's cars)."""

    def __init__(self, speed_mps: float = 0.0, accel_per_throttle: float = 4.0, decel_per_brake: float = 8.0):
        self.x = self.y = self.yaw = 0.0
        self.speed = speed_mps
        self.yaw_rate = 0.0
        self.k_acc, self.k_brake = accel_per_throttle, decel_per_brake

    def step(self, c: Control, dt: float, wheelbase_m: float = 2.8, max_wheel_rad: float = 1.22) -> None:
        acc = self.k_acc * c.throttle - self.k_brake * c.brake - 0.05 * self.speed
        self.speed = max(0.0, self.speed + acc * dt)
        self.yaw_rate = self.speed * math.tan(c.steer * max_wheel_rad) / wheelbase_m
        self.yaw += self.yaw_rate * dt
        self.x += self.speed * math.cos(self.yaw) * dt
        self.y += self.speed * math.sin(self.yaw) * dt

    def ego(self) -> EgoState:
        return EgoState(speed_mps=self.speed, yaw_rate_rps=self.yaw_rate, source="sim")


@pytest.fixture
def kit() -> SimpleNamespace:
    """Plan builders and the kinematic car, for the tests of this folder."""
    return SimpleNamespace(straight_plan=straight_plan, arc_plan=arc_plan, ego=ego, KinematicCar=KinematicCar)
