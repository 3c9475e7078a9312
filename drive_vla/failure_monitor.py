"""The failure monitor at drive time: per-frame checks, the fallback hold, second opinions, and its log."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from drive_vla.control.path import odometry_step
from drive_vla.eval.monitor_metrics import fires_per_minute, flag_infractions
from drive_vla.monitor import (
    CheckResult,
    MonitorConfig,
    cap_trajectory_speed,
    check_drivable,
    check_head_tokens,
    check_input_fault,
    check_plan_jump,
    plan_jump_m,
    trajectory_gap_m,
)
from drive_vla.types import Control, EgoState, Observation, Plan

log = logging.getLogger(__name__)


@dataclass
class _PlanMemory:
    """The previous plan and where the car was when it was made (global pose if known, and odometry)."""

    xy: np.ndarray
    dt_s: float
    time_s: float
    pose_global: tuple[float, float, float] | None
    pose_odometry: np.ndarray


class FailureMonitor:
    """Checks each plan (`drive_vla.monitor`), and when a check fires holds a slow fallback for a while.

    During the hold the plan's path is kept but re-timed to slow to ``fallback_speed_mps`` (its decoded
    controls lose their throttle above that speed), and a planner with ``second_opinion(obs, explain)`` is
    asked for its slow path (token decoding and an explanation), which is logged beside the checks.

    Args:
        cfg: thresholds and fallback settings.
        planner: the planner being watched (only read for ``second_opinion`` and ``plans_with_head``).
        env: the backend; its ``drivable(points_ego, margin_m)`` is used when it has one.
    """

    def __init__(self, cfg: MonitorConfig, planner: Any, env: Any) -> None:
        self.cfg = cfg
        self._ask = getattr(planner, "second_opinion", None)
        self._cross_check = self._ask is not None and bool(getattr(planner, "plans_with_head", False))
        self._drivable = getattr(env, "drivable", None)
        self.reset()

    def reset(self) -> None:
        self._prev: _PlanMemory | None = None
        self._pose_global: tuple[float, float, float] | None = None
        self._pose_odometry = np.zeros(3)
        self._hold_until_s = -np.inf
        self._next_cross_s = 0.0
        self.fire_times_s: list[float] = []
        self.by_check: dict[str, int] = {}
        self.fallback_s = 0.0
        self.second_opinions = 0
        self.errors = 0

    @property
    def mode(self) -> str:
        return "on" if self.cfg.intervene else "shadow"

    def holding(self, time_s: float) -> bool:
        return self.cfg.intervene and time_s < self._hold_until_s - 1e-9

    # -- per planner frame ----------------------------------------------------------------------------
    def safe_frame(
        self, time_s: float, plan: Plan | None, error: str | None, obs: Observation | None, ego: EgoState
    ) -> tuple[Plan | None, dict[str, Any]]:
        """``frame`` that never raises: a monitor fault is logged and returns no plan, so the car brakes."""
        try:
            return self.frame(time_s, plan, error, obs, ego)
        except Exception as exc:  # noqa: BLE001 - the drive loop must survive a monitor fault
            self.errors += 1
            log.error("monitor failed at %.2f s: %s: %s", time_s, type(exc).__name__, exc)
            return None, {"error": f"{type(exc).__name__}: {exc}", "fallback": {"action": "brake (monitor fault)"}}

    def frame(
        self, time_s: float, plan: Plan | None, error: str | None, obs: Observation | None, ego: EgoState
    ) -> tuple[Plan | None, dict[str, Any]]:
        """Check one planner frame; returns the plan to drive (capped while holding) and the step's record."""
        cfg = self.cfg
        checks: list[CheckResult] = [check_input_fault(error)]
        if plan is not None:
            checks.append(check_plan_jump(self._jump_m(plan, time_s), cfg))
            if self._drivable is not None:
                on_lane = self._drivable(plan.trajectory.xy, margin_m=cfg.drivable_margin_m)
                checks.append(check_drivable(on_lane, plan.trajectory.dt_s, cfg))
        second, second_ms = None, 0.0
        fired_fast = any(c.fired for c in checks)
        cross_due = self._cross_check and cfg.cross_check_every_s > 0 and time_s >= self._next_cross_s - 1e-9
        can_ask = self._ask is not None and obs is not None
        if can_ask and plan is not None and (cross_due or (fired_fast and cfg.intervene)):
            if cross_due:
                self._next_cross_s = time_s + cfg.cross_check_every_s
            second, second_ms = self._second_opinion(obs, explain=fired_fast and cfg.intervene)
            if self._cross_check:
                checks.append(check_head_tokens(trajectory_gap_m(plan.trajectory.xy, second.trajectory.xy), cfg))
        fired = [c.name for c in checks if c.fired]
        started = False
        if fired:
            self.fire_times_s.append(float(time_s))
            for name in fired:
                self.by_check[name] = self.by_check.get(name, 0) + 1
            if cfg.intervene:
                started = not self.holding(time_s)
                self._hold_until_s = time_s + cfg.hold_s
                if can_ask and plan is not None and (second is None or second.text is None):
                    second, more_ms = self._second_opinion(obs, explain=True)
                    second_ms += more_ms
        if plan is not None:
            self._remember(plan, time_s)
        record: dict[str, Any] = {"checks": [c.to_dict() for c in checks], "fired": fired}
        holding = self.holding(time_s)
        if holding:
            speed = float(ego.speed_mps)
            action = "brake (no plan)" if plan is None else "slow: path kept, speed capped"
            if plan is not None:
                plan = self._capped(plan, speed)
            # The car does not follow the plan the fallback replaced, so it is no baseline for the next plan-jump
            # check: measured against it, the fallback's own braking would read as a jump and renew the hold.
            self._prev = None
            record["fallback"] = {
                "action": action,
                "started": started,
                "speed_cap_mps": cfg.fallback_speed_mps,
                "hold_left_s": float(self._hold_until_s - time_s),
                "trajectory": None if plan is None else plan.trajectory.xy.tolist(),
            }
        if second is not None:
            record["second_opinion"] = {
                "trajectory": second.trajectory.xy.tolist(),
                "text": second.text,
                "meta_action": second.meta_action,
                "ms": second_ms,
            }
        return plan, record

    def _jump_m(self, plan: Plan, time_s: float) -> float | None:
        prev = self._prev
        if prev is None:
            return None
        use_global = prev.pose_global is not None and self._pose_global is not None
        prev_pose = prev.pose_global if use_global else prev.pose_odometry
        pose = self._pose_global if use_global else self._pose_odometry
        traj = plan.trajectory
        return plan_jump_m(prev.xy, prev.dt_s, prev_pose, traj.xy, traj.dt_s, pose, max(time_s - prev.time_s, 0.0))

    def _remember(self, plan: Plan, time_s: float) -> None:
        traj = plan.trajectory
        self._prev = _PlanMemory(
            np.asarray(traj.xy, dtype=np.float64).copy(),
            float(traj.dt_s),
            float(time_s),
            self._pose_global,
            self._pose_odometry.copy(),
        )

    def _second_opinion(self, obs: Observation, explain: bool) -> tuple[Plan, float]:
        t0 = time.perf_counter()
        second = self._ask(obs, explain=explain)
        if not isinstance(second, Plan):
            raise ValueError(f"second_opinion: got {type(second).__name__}, expected a Plan")
        self.second_opinions += 1
        return second, 1000.0 * (time.perf_counter() - t0)

    def _capped(self, plan: Plan, speed_mps: float) -> Plan:
        traj = cap_trajectory_speed(plan.trajectory, speed_mps, self.cfg)
        controls = plan.controls
        if controls is not None and speed_mps > self.cfg.fallback_speed_mps:
            controls = Control(steer=controls.steer, throttle=0.0, brake=controls.brake)
        return dataclasses.replace(plan, trajectory=traj, controls=controls)

    # -- per env step ---------------------------------------------------------------------------------
    def after_step(self, info: dict[str, Any], ego: EgoState, dt_s: float, time_s: float) -> None:
        """Track the ego pose (global from ``info["pose"]``, else odometry) and the time spent holding.

        Never raises: a bad pose is logged and the plan-jump check falls back to odometry.
        """
        try:
            pose = info.get("pose")
            self._pose_global = None if pose is None else tuple(float(v) for v in pose)
            self._pose_odometry = odometry_step(
                self._pose_odometry, float(ego.speed_mps), float(ego.yaw_rate_rps), dt_s
            )
        except Exception as exc:  # noqa: BLE001 - the drive loop must survive a monitor fault
            self.errors += 1
            self._pose_global = None
            log.error("monitor failed at %.2f s: %s: %s", time_s, type(exc).__name__, exc)
        if self.holding(time_s - dt_s):
            self.fallback_s += dt_s

    # -- per route ------------------------------------------------------------------------------------
    def summary(self, driven_s: float, infractions: Iterable[tuple[str, float]]) -> dict[str, Any]:
        """Fires (count, per minute, per check), fallback time, and the infractions flagged beforehand."""
        flags = flag_infractions(self.fire_times_s, infractions, self.cfg.flag_window_s)
        return {
            "mode": self.mode,
            "fires": len(self.fire_times_s),
            "fires_per_min": fires_per_minute(len(self.fire_times_s), driven_s),
            "driven_s": float(driven_s),
            "by_check": dict(self.by_check),
            "fallback_s": float(self.fallback_s),
            "second_opinions": self.second_opinions,
            "monitor_errors": self.errors,
            "infractions_flagged": flags["flagged"],
            "infractions_missed": flags["missed"],
            "flag_window_s": self.cfg.flag_window_s,
            "flags": flags,
            "fire_times_s": list(self.fire_times_s),
        }
