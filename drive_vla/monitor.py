"""Failure-monitor checks of a plan as pure functions, their typed config, and the fallback's speed cap."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from drive_vla.control.path import path_length_m, point_at_arc_length
from drive_vla.geometry import global_points_to_local, local_poses_to_global
from drive_vla.types import Trajectory

CHECK_NAMES = ("input_fault", "plan_jump", "head_tokens", "off_drivable")


@dataclass
class MonitorConfig:
    """Thresholds of the checks and what the fallback does. Chosen by reasoning, never on held-out routes.

    The value thresholds depend on the policy: calibrate them on training-range routes (seeds below 900000)
    driven with ``drive --monitor shadow``, e.g. at the 95th percentile of each check's logged values, and
    pass them with ``--monitor-set``. For a 4-epoch embedded_tiny policy on 16 scenes those percentiles were
    1.5 m (plan jump) and 29.6 m (head vs tokens: its token decoding is far less trained than its head).

    Attributes:
        plan_jump_m: fire when the new plan and the previous plan, carried into the current ego frame and
            shifted by the time between them, are further apart than this at any overlapping waypoint.
            4 m is one lane of the embedded world (highway-env lanes are 4 m wide): the plan changed its mind
            by a whole lane, or its distance travelled in 2.5 s by 4 m (a 1.3 m/s^2 change of acceleration),
            within one 0.5 s planner period.
        head_tokens_m: fire when the planner head's and the decoded tokens' waypoints are further apart than
            this at any waypoint. The same lane width: two readings of one hidden state that disagree by a
            lane are not both right, while the tokenizer's bins (< 0.5 m) and ordinary model error stay below.
        cross_check_every_s: ask the slow path (token decoding) for the head-vs-tokens check this often
            (0 = only when another check fired); 2 s keeps its cost near 10 % of a tiny policy's planning.
        drivable_horizon_s: waypoints up to this far ahead must lie on a lane; 2 s at 2 Hz is 4 waypoints,
            time enough to slow down before the car gets there.
        drivable_margin_m: tolerance beyond a lane's edge; 0.5 m absorbs waypoint noise (the rear axle runs
            about a metre inside the car's centre on a curve).
        hold_s: the fallback lasts this long after the last fire (6 planner frames at 2 Hz).
        fallback_speed_mps: the speed the fallback slows to (18 km/h: urban crawl; a stop from it takes
            about 4 m at 3 m/s^2).
        fallback_decel_mps2: how hard the capped plan slows from the current speed to ``fallback_speed_mps``;
            3 m/s^2 is firm but below the 4.05 m/s^2 longitudinal-deceleration comfort bound of nuPlan.
        flag_window_s: an infraction counts as flagged when the monitor fired this long before it, or less.
        intervene: False runs the checks and logs them without slowing down or asking for a second opinion
            ("shadow" mode, to measure how often the monitor would fire).
    """

    plan_jump_m: float = 4.0
    head_tokens_m: float = 4.0
    cross_check_every_s: float = 2.0
    drivable_horizon_s: float = 2.0
    drivable_margin_m: float = 0.5
    hold_s: float = 3.0
    fallback_speed_mps: float = 5.0
    fallback_decel_mps2: float = 3.0
    flag_window_s: float = 3.0
    intervene: bool = True

    def __post_init__(self) -> None:
        positive = ("plan_jump_m", "head_tokens_m", "drivable_horizon_s", "fallback_decel_mps2", "flag_window_s")
        non_negative = ("cross_check_every_s", "drivable_margin_m", "hold_s", "fallback_speed_mps")
        for name in positive + non_negative:
            value = getattr(self, name)
            ok = isinstance(value, (int, float)) and math.isfinite(value)
            if not ok or value < 0 or (name in positive and value == 0):
                expect = "> 0" if name in positive else ">= 0"
                raise ValueError(f"monitor.{name}: got {value!r}, expected a finite number {expect}")


@dataclass(frozen=True)
class CheckResult:
    """One check of one planner frame: its value, the threshold it is held to, and whether it fired."""

    name: str
    fired: bool
    value: float | None = None
    threshold: float | None = None
    unit: str = ""
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if v not in ("", None) or k in ("fired", "value")}


def _timed_xy(xy: np.ndarray, dt_s: float) -> tuple[np.ndarray, np.ndarray]:
    """(times_s, xy) with the ego origin at time 0 prepended."""
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    return np.arange(len(xy) + 1) * float(dt_s), np.concatenate([np.zeros((1, 2)), xy])


def carry_plan(
    prev_xy: np.ndarray, prev_dt_s: float, prev_pose: Sequence[float], pose: Sequence[float], elapsed_s: float
) -> tuple[np.ndarray, np.ndarray]:
    """The previous plan in the current ego frame, on the current clock.

    Args:
        prev_xy: (T, 2) waypoints of the previous plan, in the ego frame of ``prev_pose``.
        prev_dt_s: their spacing in time, seconds.
        prev_pose, pose: (x, y, yaw) global ego poses when the previous and the current plan were made.
        elapsed_s: time between the two plans, seconds.

    Returns:
        times_s: (M,) times from now of the previous plan's points that still lie in the future.
        xy: (M, 2) those points in the current ego frame.
    """
    times, xy = _timed_xy(prev_xy, prev_dt_s)
    glob = local_poses_to_global(np.concatenate([xy, np.zeros((len(xy), 1))], axis=1), prev_pose)[:, :2]
    now = global_points_to_local(glob, pose)
    keep = times - elapsed_s > 1e-9
    return times[keep] - elapsed_s, now[keep]


def plan_jump_m(
    prev_xy: np.ndarray,
    prev_dt_s: float,
    prev_pose: Sequence[float],
    new_xy: np.ndarray,
    new_dt_s: float,
    pose: Sequence[float],
    elapsed_s: float,
) -> float | None:
    """Largest distance, metres, between the new plan and the carried previous plan over their common horizon.

    The previous plan is interpolated at the new plan's waypoint times (linear, in the current ego frame).
    None when they share no waypoint time (``elapsed_s`` beyond the previous horizon).
    """
    if not elapsed_s >= 0:
        raise ValueError(f"elapsed_s: got {elapsed_s!r}, expected >= 0 seconds")
    times_prev, xy_prev = carry_plan(prev_xy, prev_dt_s, prev_pose, pose, elapsed_s)
    if len(times_prev) == 0:
        return None
    new = np.asarray(new_xy, dtype=np.float64).reshape(-1, 2)
    t_new = np.arange(1, len(new) + 1) * float(new_dt_s)
    # Before the first carried point the previous plan runs from where the car is now, not from its old origin.
    times = np.concatenate([[0.0], times_prev])
    xy = np.concatenate([np.zeros((1, 2)), xy_prev])
    overlap = t_new <= times[-1] + 1e-9
    if not overlap.any():
        return None
    t = t_new[overlap]
    ref = np.stack([np.interp(t, times, xy[:, 0]), np.interp(t, times, xy[:, 1])], axis=1)
    return float(np.linalg.norm(new[overlap] - ref, axis=1).max())


def trajectory_gap_m(a_xy: np.ndarray, b_xy: np.ndarray) -> float:
    """Largest distance, metres, between two trajectories' waypoints at the same times (same length)."""
    a, b = np.asarray(a_xy, dtype=np.float64), np.asarray(b_xy, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2 or a.shape[1] != 2:
        raise ValueError(f"trajectories: got shapes {a.shape} and {b.shape}, expected two equal (T, 2)")
    return float(np.linalg.norm(a - b, axis=1).max())


def check_plan_jump(jump_m: float | None, cfg: MonitorConfig) -> CheckResult:
    """Fires when ``plan_jump_m`` exceeds ``cfg.plan_jump_m``; a missing previous plan never fires."""
    fired = jump_m is not None and jump_m > cfg.plan_jump_m
    return CheckResult("plan_jump", fired, jump_m, cfg.plan_jump_m, "m")


def check_head_tokens(gap_m: float, cfg: MonitorConfig) -> CheckResult:
    """Fires when the head's and the tokens' trajectories are more than ``cfg.head_tokens_m`` apart."""
    return CheckResult("head_tokens", gap_m > cfg.head_tokens_m, gap_m, cfg.head_tokens_m, "m")


def check_drivable(on_lane: np.ndarray, dt_s: float, cfg: MonitorConfig) -> CheckResult:
    """Fires when a waypoint within ``cfg.drivable_horizon_s`` is on no lane.

    Args:
        on_lane: (T,) bool per waypoint of the plan (the map's answer), waypoint i at time (i + 1) * dt_s.

    The value is the time, seconds, of the first waypoint off every lane (None when all are on a lane).
    """
    flags = np.asarray(on_lane, dtype=bool).reshape(-1)
    times = np.arange(1, len(flags) + 1) * float(dt_s)
    off = np.flatnonzero(~flags & (times <= cfg.drivable_horizon_s + 1e-9))
    first = float(times[off[0]]) if len(off) else None
    return CheckResult("off_drivable", first is not None, first, cfg.drivable_horizon_s, "s")


def check_input_fault(error: str | None) -> CheckResult:
    """Fires on a missing or invalid observation or a planner fault (the loop brakes for those itself)."""
    return CheckResult("input_fault", error is not None, None, None, "", error or "")


def cap_speed_s_m(times_s: np.ndarray, speed_mps: float, target_mps: float, decel_mps2: float) -> np.ndarray:
    """Arc length, metres, reachable by each time when slowing from ``speed_mps`` to ``target_mps``.

    The speed falls at ``decel_mps2`` until it reaches ``target_mps``, then stays there; a car already
    slower than ``target_mps`` may drive at ``target_mps``.
    """
    t = np.asarray(times_s, dtype=np.float64)
    v0 = max(float(speed_mps), 0.0)
    if v0 <= target_mps:
        return target_mps * t
    t_slow = (v0 - target_mps) / decel_mps2
    slowing = v0 * t - 0.5 * decel_mps2 * t * t
    after = v0 * t_slow - 0.5 * decel_mps2 * t_slow * t_slow + target_mps * (t - t_slow)
    return np.where(t <= t_slow, slowing, after)


def cap_trajectory_speed(traj: Trajectory, speed_mps: float, cfg: MonitorConfig) -> Trajectory:
    """The same path, re-timed so that it slows to ``cfg.fallback_speed_mps`` (never faster than planned).

    Each waypoint moves back along the planned polyline to the arc length the speed cap allows at its time,
    so a waypoint-following controller slows down while steering along the same path.
    """
    times, xy = _timed_xy(traj.xy, traj.dt_s)
    seg = np.linalg.norm(np.diff(xy, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(seg)])  # (T+1,)
    allowed = cap_speed_s_m(times, speed_mps, cfg.fallback_speed_mps, cfg.fallback_decel_mps2)
    target = np.minimum(arc, allowed)[1:]
    if path_length_m(xy) < 1e-6:
        return traj
    new_xy = np.stack([point_at_arc_length(xy, s) for s in target]).astype(np.float32)
    yaw = np.concatenate([[0.0], np.asarray(traj.yaw_rad, dtype=np.float64)])
    new_yaw = np.interp(target, arc, yaw).astype(np.float32)
    return Trajectory(new_xy, new_yaw, np.asarray(traj.mask, dtype=bool).copy(), traj.dt_s)
