"""PIDController: planned waypoints (2 Hz, ego frame) -> steer/throttle/brake, TCP/TransFuser++ style."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from drive_vla.control.base import check_step_inputs
from drive_vla.control.config import PIDControllerConfig
from drive_vla.control.path import (
    aim_point,
    curve_speed_mps,
    desired_speed_mps,
    odometry_step,
    path_length_m,
    timed_path,
)
from drive_vla.control.pid import ActuatorLimiter, WindowedPID
from drive_vla.geometry import global_poses_to_local
from drive_vla.types import Control, EgoState, Plan


def make_limiter(cfg: PIDControllerConfig) -> ActuatorLimiter:
    """The actuator and rate limits of a config."""
    return ActuatorLimiter(
        max_steer=cfg.max_steer,
        max_throttle=cfg.max_throttle,
        max_brake=cfg.max_brake,
        max_steer_rate_per_s=cfg.max_steer_rate_per_s,
        max_throttle_rise_per_s=cfg.max_throttle_rise_per_s,
        max_brake_rise_per_s=cfg.max_brake_rise_per_s,
    )


def pursuit_steer(aim_xy: np.ndarray, wheelbase_m: float, max_steer_rad: float) -> float:
    """Pure pursuit: the steer (front-wheel angle / ``max_steer_rad``, positive LEFT, unclipped) that puts the car
    on the arc through the ego origin and ``aim_xy`` (ego frame, metres), tangent to the car's heading."""
    x, y = float(aim_xy[0]), float(aim_xy[1])
    d2 = x * x + y * y
    if d2 <= 0.0:
        return 0.0
    curvature = 2.0 * y / d2  # 2 sin(alpha) / d
    return math.atan(wheelbase_m * curvature) / max_steer_rad


class PIDController:
    """Lateral and longitudinal PID over a planned trajectory.

    Lateral: the aim point lies ``aim_distance`` (speed dependent) along the planned path; its angle
    (degrees / 90, positive LEFT) is the turn PID's error, or (``lateral: pursuit``) pure pursuit steers onto
    the arc through it. Longitudinal: the desired speed is the
    planned path length between two plan times divided by their gap; the speed PID drives throttle on
    the clipped positive speed error; it brakes when the desired speed is near zero or the car is more
    than ``brake_ratio`` times faster than desired. Between policy calls the plan is re-expressed in
    the current ego frame by dead reckoning (speed and yaw rate), so a 2 Hz plan stays usable at 20 Hz.

    Attributes:
        debug: facts of the last step (desired speed, aim point, angle, brake reason, creeping), for logs.
    """

    def __init__(self, cfg: PIDControllerConfig | None = None) -> None:
        self.cfg = cfg or PIDControllerConfig()
        c = self.cfg
        self.turn_pid = WindowedPID(c.turn_kp, c.turn_ki, c.turn_kd, c.turn_window_s, c.gains_tuned_dt_s)
        self.speed_pid = WindowedPID(c.speed_kp, c.speed_ki, c.speed_kd, c.speed_window_s, c.gains_tuned_dt_s)
        self.limiter = make_limiter(c)
        self.debug: dict[str, Any] = {}
        self.reset()

    def reset(self) -> None:
        self.turn_pid.reset()
        self.speed_pid.reset()
        self.limiter.reset()
        self._plan: Plan | None = None
        self._pose = np.zeros(3)  # ego pose in the current plan's frame
        self._plan_age_s = 0.0
        self._time_s = 0.0
        self._standstill_s = 0.0
        self._creep_left_s = 0.0
        self.debug = {}

    def step(self, plan: Plan, ego: EgoState, dt: float) -> Control:
        """One control step; ``dt`` is the time until the next step, seconds."""
        check_step_inputs(plan, ego, dt)
        c = self.cfg
        if plan is not self._plan:
            self._plan, self._pose, self._plan_age_s = plan, np.zeros(3), 0.0
        self._time_s += dt
        speed = float(ego.speed_mps)
        age = self._plan_age_s if c.compensate_plan_age else 0.0

        times, xy_plan = timed_path(plan.trajectory)
        desired = desired_speed_mps(times, xy_plan, age + c.speed_window_start_s, age + c.speed_window_end_s)
        curve_cap = math.inf
        if c.max_lateral_accel_mps2 is not None:
            curve_cap = curve_speed_mps(xy_plan, c.max_lateral_accel_mps2, c.curve_decel_mps2)
            desired = min(desired, curve_cap)
        too_slow = desired < c.brake_speed_mps
        too_fast = not too_slow and speed > c.brake_ratio * desired
        brake = too_slow or too_fast
        error = min(max(desired - speed, 0.0), c.speed_error_clip_mps)
        throttle = min(max(self.speed_pid.step(error, dt), 0.0), c.max_throttle)

        if c.compensate_plan_age and self._plan_age_s > 0.0:
            poses = np.concatenate([xy_plan, np.zeros((len(xy_plan), 1))], axis=1)
            xy_now = global_poses_to_local(poses, self._pose)[:, :2]
        else:
            xy_now = xy_plan
        pursuit = c.lateral == "pursuit"
        if pursuit:
            aim_distance = max(c.pursuit_aim_m, c.pursuit_aim_time_s * speed)
        else:
            aim_distance = c.aim_distance_slow_m if speed < c.aim_speed_threshold_mps else c.aim_distance_fast_m
            aim_distance = max(aim_distance, c.aim_time_s * speed)
        aim = aim_point(xy_now, aim_distance)
        if abs(speed) < c.standstill_speed_mps or float(np.hypot(*aim)) < c.min_aim_distance_m:
            angle = 0.0
        else:
            angle = math.degrees(math.atan2(aim[1], aim[0])) / 90.0
        if pursuit:
            steer = pursuit_steer(aim, c.pursuit_wheelbase_m, c.pursuit_max_steer_rad) if angle != 0.0 else 0.0
        else:
            steer = self.turn_pid.step(angle, dt)
        steer = min(max(steer, -1.0), 1.0)

        # deadlock breaker: after a long standstill, creep if the plan still asks to move
        self._standstill_s = self._standstill_s + dt if abs(speed) < c.stuck_speed_mps else 0.0
        wants_to_move = path_length_m(xy_plan) >= c.creep_min_plan_length_m
        if self._creep_left_s <= 0.0 and self._standstill_s >= c.stuck_time_s and wants_to_move:
            self._creep_left_s, self._standstill_s = c.creep_duration_s, 0.0
        creeping = self._creep_left_s > 0.0
        if creeping:
            throttle, brake = max(throttle, c.creep_throttle), False
            self._creep_left_s -= dt

        initial_brake = self._time_s <= c.initial_brake_s + 1e-9
        if initial_brake:
            throttle, brake = 0.0, True
        out = self.limiter.apply(steer, 0.0 if brake else throttle, c.brake_value if brake else 0.0, dt)

        self.debug = {
            "desired_speed_mps": desired,
            "curve_cap_mps": curve_cap,
            "speed_mps": speed,
            "aim_xy_m": [float(aim[0]), float(aim[1])],
            "angle": angle,
            "brake_reason": "initial" if initial_brake else "stop" if too_slow else "too_fast" if too_fast else None,
            "creeping": creeping,
            "plan_age_s": self._plan_age_s,
        }
        self._pose = odometry_step(self._pose, speed, float(ego.yaw_rate_rps), dt)
        self._plan_age_s += dt
        return out
