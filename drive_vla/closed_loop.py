"""The drive loop, shared by every backend: env -> Observation -> planner -> Plan -> controller -> Control -> env.

The planner runs at ``policy_hz`` (2 Hz by default, the rate of the training keyframes); the controller
runs at the environment's rate on the latest plan. The loop never crashes on a planner or sensor fault:
a planner that raises, returns something that is not a finite Plan, or an observation that is missing,
is logged, the car brakes fully for that step and the loop carries on. With ``DriveLoopConfig.monitor`` set,
a failure monitor (`drive_vla.failure_monitor`) checks every plan and, when a check fires, slows the car and
asks the planner's slow path for a second opinion; a monitor that raises brakes the car until the next
planner frame. Every step is recorded
(``steps.jsonl``), observations are saved every ``save_frames_every_s`` for `drive-vla explain --episode`,
and the route is scored as the CARLA leaderboard does (`drive_vla.eval.closed_loop_scoring`).
"""

from __future__ import annotations

import json
import logging
import math
import random
import sys
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from drive_vla.control.base import Controller
from drive_vla.eval.closed_loop_scoring import (
    DriveLog,
    Infraction,
    RouteRecord,
    comfort_metrics,
    kinematics_from_poses,
    route_score,
)
from drive_vla.eval.monitor_metrics import infraction_onsets
from drive_vla.failure_monitor import FailureMonitor
from drive_vla.monitor import MonitorConfig
from drive_vla.types import Control, DrivingEnv, EgoState, Observation, Plan, Planner

log = logging.getLogger(__name__)

COLLISION_KINDS = {"vehicle": "collision_vehicle", "pedestrian": "collision_pedestrian", "static": "collision_static"}
ENDING_REASONS = {"off_route": "route_deviation", "timeout": "route_timeout", "blocked": "agent_blocked"}


@dataclass
class DriveLoopConfig:
    """How the loop runs one route.

    Attributes:
        policy_hz: planner calls per second (the env steps faster; the controller follows the last plan).
        max_time_s: the route ends (timeout) after this long, seconds of simulated time.
        blocked_after_s: the route ends as "agent blocked" after this long below ``blocked_speed_mps``
            (Bench2Drive uses 60 s on routes of minutes; embedded routes last under a minute).
        blocked_speed_mps: speed below which the ego counts as standing.
        explain_every_s: ask the planner for an explanation at most this often (0 = never).
        save_frames_every_s: save the observation for `drive-vla explain --episode` this often (0 = never).
        strip_every_s: save a front-camera PNG for the episode strip this often (0 = never).
        seed: when set, Python's, NumPy's and torch's global generators are seeded at the start of every
            route from (seed, scenario, route seed) (`route_seed`), so a run does not depend on what ran
            before it; None leaves them alone.
        monitor: the failure monitor's config (``intervene=False``: checks logged only); None runs none.
    """

    policy_hz: float = 2.0
    max_time_s: float = 60.0
    blocked_after_s: float = 20.0
    blocked_speed_mps: float = 0.1
    explain_every_s: float = 5.0
    save_frames_every_s: float = 2.0
    strip_every_s: float = 2.0
    seed: int | None = None
    monitor: MonitorConfig | None = None

    def __post_init__(self) -> None:
        if not 0.0 < self.policy_hz <= 100.0:
            raise ValueError(f"policy_hz: got {self.policy_hz!r}, expected a rate in (0, 100] Hz")
        if self.max_time_s <= 0:
            raise ValueError(f"max_time_s: got {self.max_time_s!r}, expected > 0 seconds")


@dataclass
class EpisodeResult:
    """One route: its record for scoring, its score and the per-step log."""

    record: RouteRecord
    score: dict[str, Any]
    steps: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


def route_seed(run_seed: int, scenario: str, seed: int) -> int:
    """A 32-bit seed for one route of a run (CRC32 of the scenario name: no dependence on PYTHONHASHSEED)."""
    state = np.random.SeedSequence([int(run_seed), zlib.crc32(scenario.encode()), int(seed)]).generate_state(1)
    return int(state[0])


def seed_global_rngs(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and, when it is loaded, torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - third-party code may draw from the legacy global generator
    torch = sys.modules.get("torch")  # a planner that uses torch has imported it; do not import it for others
    if torch is not None:
        torch.manual_seed(seed)


def _finite_plan(plan: Any) -> Plan:
    if not isinstance(plan, Plan):
        raise ValueError(f"planner output: got {type(plan).__name__}, expected a Plan")
    xy = plan.trajectory.xy
    if xy.shape != (6, 2) or not np.all(np.isfinite(xy)):
        raise ValueError(f"plan.trajectory.xy: got array{tuple(xy.shape)}, expected 6 finite waypoints")
    return plan


def safe_plan(
    planner: Planner, obs: Observation | None, obs_error: str | None = None
) -> tuple[Plan | None, str | None, float]:
    """Ask the planner; never raises. Returns (plan or None, error text or None, milliseconds).

    ``obs_error``: why the backend could not build the observation (it names the field), for the log."""
    t0 = time.perf_counter()
    if obs is None:
        return None, f"no observation ({obs_error or 'sensor data missing or invalid'})", 0.0
    try:
        plan = _finite_plan(planner.predict_batch([obs])[0])
        return plan, None, 1000.0 * (time.perf_counter() - t0)
    except Exception as exc:  # noqa: BLE001 - the loop must survive any planner fault
        return None, f"{type(exc).__name__}: {exc}", 1000.0 * (time.perf_counter() - t0)


def safe_control(controller: Controller, plan: Plan | None, ego: EgoState, dt: float) -> tuple[Control, str | None]:
    """Controller output, or a full brake when there is no plan or the controller fails."""
    if plan is None:
        return Control.emergency_brake(), "no plan: braking"
    try:
        control = controller.step(plan, ego, dt)
        if not isinstance(control, Control):
            raise ValueError(f"controller output: got {type(control).__name__}, expected a Control")
        return control, None
    except Exception as exc:  # noqa: BLE001
        return Control.emergency_brake(), f"controller {type(exc).__name__}: {exc}"


def _explain(planner: Planner, obs: Observation) -> str | None:
    fn = getattr(planner, "explain", None)
    if fn is None:
        return None
    try:
        return str(fn(obs))
    except Exception as exc:  # noqa: BLE001
        log.warning("explanation failed: %s", exc)
        return None


def _every(period_s: float, dt: float) -> int:
    return 0 if period_s <= 0 else max(1, int(round(period_s / dt)))


def run_episode(
    env: DrivingEnv,
    planner: Planner,
    controller: Controller,
    scenario: str,
    seed: int,
    cfg: DriveLoopConfig | None = None,
    out_dir: str | Path | None = None,
    route_id: str | None = None,
) -> EpisodeResult:
    """Drive one route and score it.

    Args:
        env: the backend (EmbeddedEnv, CarlaEnv, ...). Its ``step`` may take ``observe=False`` to skip
            rendering between planner calls, and its ``dt_s`` gives the step length (default 0.05 s).
        planner: anything with ``predict_batch`` / ``reset`` (and optionally ``explain``). A planner whose
            ``observes`` attribute is False is called at every env step without fresh observations.
        controller: turns the latest plan into a Control at every env step.
        out_dir: when given, ``steps.jsonl``, ``summary.json``, ``frames/`` are written there.
    """
    cfg = cfg or DriveLoopConfig()
    dt = float(getattr(env, "dt_s", 0.05))
    observes = bool(getattr(planner, "observes", True))
    every_policy = 1 if not observes else max(1, int(round(1.0 / (cfg.policy_hz * dt))))
    every_explain, every_frame, every_strip = (
        _every(s, dt) for s in (cfg.explain_every_s, cfg.save_frames_every_s, cfg.strip_every_s)
    )
    route_id = route_id or f"{scenario}-{seed}"
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        (out / "frames").mkdir(parents=True, exist_ok=True)

    if cfg.seed is not None:
        seed_global_rngs(route_seed(cfg.seed, scenario, seed))
    planner.reset()
    controller.reset()
    monitor = FailureMonitor(cfg.monitor, planner, env) if cfg.monitor is not None else None
    t_start = time.perf_counter()
    try:
        obs: Observation | None = env.reset(scenario, seed)
    except ValueError:
        raise
    except Exception as exc:  # noqa: BLE001 - a backend that cannot start the route fails it, not the run
        log.error("route %s: env.reset failed: %s", route_id, exc)
        record = RouteRecord(route_id, 0.0, (), status="failed")
        return EpisodeResult(record, route_score(record), [], {"route_id": route_id, "error": str(exc)})
    ego = obs.ego
    obs_error: str | None = None  # the backend's reason for a missing observation (StepResult.info)
    collision_detail: dict[str, Any] | None = None  # the first contact's geometry, where the backend gives it
    plan: Plan | None = None
    steps: list[dict[str, Any]] = []
    infractions: list[Infraction] = []
    poses: list[tuple[float, float, float, float]] = []
    off_road_m, distance_m, standing_s, n_errors = 0.0, 0.0, 0.0, 0
    route_offsets: list[float] = []  # the backend's distance from the route's centre line, where it gives one
    first_off_road_s: float | None = None
    completion, done_reason, status = 0.0, None, "ended"
    policy_ms: list[float] = []
    n_steps = int(math.ceil(cfg.max_time_s / dt))
    for k in range(n_steps):
        entry: dict[str, Any] = {"step": k}
        if k % every_policy == 0:
            new_plan, error, ms = safe_plan(planner, obs, obs_error)
            policy_ms.append(ms)
            if error:
                n_errors += 1
                log.warning("route %s step %d: %s", route_id, k, error)
                entry["error"] = error
            plan = new_plan
            if plan is not None:
                entry["plan"] = plan.to_dict()
            if monitor is not None:
                plan, entry["monitor"] = monitor.safe_frame(k * dt, plan, error, obs, ego)
                if out is not None and obs is not None and entry["monitor"].get("fired"):
                    _save_frames(out, k, obs, 1, 0)  # `drive-vla explain --episode` can replay the fire
            if every_explain and obs is not None and k % every_explain == 0:
                entry["explanation"] = _explain(planner, obs)
            if out is not None and obs is not None:
                _save_frames(out, k, obs, every_frame, every_strip)
        control, ctrl_error = safe_control(controller, plan, ego, dt)
        if ctrl_error and plan is not None:
            log.warning("route %s step %d: %s", route_id, k, ctrl_error)
            entry["error"] = ctrl_error
        want_obs = observes and (k + 1) % every_policy == 0
        try:
            result = env.step(control, observe=want_obs) if _takes_observe(env) else env.step(control)
        except Exception as exc:  # noqa: BLE001 - the backend itself failed: the route fails
            log.error("route %s step %d: env.step failed: %s", route_id, k, exc)
            status, done_reason = "failed", f"env error: {exc}"
            break
        info = result.info
        if result.observation is not None or observes:
            obs = result.observation  # a planner that does not observe keeps the last observation
            obs_error = info.get("observation_error")
        ego = info.get("ego") or (obs.ego if obs is not None else ego)
        speed = float(info.get("speed_mps", ego.speed_mps))
        distance_m += abs(speed) * dt
        offset = info.get("off_route_m")
        if isinstance(offset, (int, float)) and math.isfinite(offset):
            route_offsets.append(float(offset))
            entry["off_route_m"] = round(float(offset), 3)
        if info.get("off_road"):
            off_road_m += abs(speed) * dt
            if first_off_road_s is None:
                first_off_road_s = float(info.get("time_s", (k + 1) * dt))
        if monitor is not None:
            monitor.after_step(info, ego, dt, float(info.get("time_s", (k + 1) * dt)))
        completion = float(info.get("route_completion", completion))
        if info.get("pose") is not None:
            poses.append((float(info.get("time_s", (k + 1) * dt)), *info["pose"]))
        if info.get("collision") and not any(i.kind.startswith("collision") for i in infractions):
            collision_detail = info.get("collision_detail")
            kind = COLLISION_KINDS.get(str(info["collision"]), "collision_static")
            infractions.append(
                Infraction(kind, time_s=float(info.get("time_s", 0.0)), detail=str(info.get("collision_with") or ""))
            )
        standing_s = standing_s + dt if speed < cfg.blocked_speed_mps else 0.0
        entry.update(
            time_s=float(info.get("time_s", (k + 1) * dt)),
            speed_mps=speed,
            control={"steer": control.steer, "throttle": control.throttle, "brake": control.brake},
            route_completion=completion,
            infractions=[i.kind for i in infractions],
        )
        steps.append(entry)
        if result.done:
            done_reason = info.get("reason") or "done"
            break
        if standing_s >= cfg.blocked_after_s:
            done_reason = "blocked"
            break
    else:
        done_reason = "timeout"

    if done_reason == "goal":
        status, completion = "completed", 1.0
    elif done_reason in ENDING_REASONS:
        infractions.append(Infraction(ENDING_REASONS[done_reason], time_s=steps[-1]["time_s"] if steps else 0.0))
    if distance_m > 0 and off_road_m > 0:
        infractions.append(Infraction("outside_route_lanes", percent=min(100.0, 100.0 * off_road_m / distance_m)))
    comfort = _comfort(poses)
    mean_speed = float(np.mean([s["speed_mps"] for s in steps])) if steps else 0.0
    record = RouteRecord(
        route_id,
        min(max(completion, 0.0), 1.0),
        tuple(infractions),
        status=status,
        duration_s=steps[-1]["time_s"] if steps else 0.0,
        distance_m=distance_m,
        mean_speed_mps=mean_speed,
        comfort_pct=comfort.get("comfort_pct") if comfort else None,
    )
    score = route_score(record)
    wall_s = time.perf_counter() - t_start
    summary = {
        "route_id": route_id,
        "scenario": scenario,
        "seed": int(seed),
        **score,
        "done_reason": done_reason,
        "infractions": [i.kind for i in infractions],
        "collisions": sum(i.kind.startswith("collision") for i in infractions),
        "collision_detail": collision_detail,
        "mean_speed_mps": mean_speed,
        "distance_m": distance_m,
        "sim_time_s": record.duration_s,
        "planner_errors": n_errors,
        "policy_calls": len(policy_ms),
        "policy_ms_p50": float(np.median(policy_ms)) if policy_ms else None,
        "wall_s": wall_s,
        "env_steps_per_s": len(steps) / wall_s if wall_s > 0 else None,
        "comfort": comfort,
        # How closely the car held its route (lateral tracking), metres from the route's centre line per step.
        "route_offset_m": (
            {"mean": float(np.mean(route_offsets)), "p90": float(np.percentile(route_offsets, 90))}
            if route_offsets
            else None
        ),
    }
    if monitor is not None:
        onsets = infraction_onsets(infractions, first_off_road_s, cfg.blocked_after_s)
        summary["monitor"] = monitor.summary(record.duration_s, onsets)
    if out is not None:
        with open(out / "steps.jsonl", "w") as fh:
            for s in steps:
                fh.write(json.dumps(s, default=str) + "\n")
        (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return EpisodeResult(record, score, steps, summary)


def _takes_observe(env: Any) -> bool:
    import inspect

    try:
        return "observe" in inspect.signature(env.step).parameters
    except (TypeError, ValueError):
        return False


def _comfort(poses: list[tuple[float, float, float, float]]) -> dict[str, Any]:
    if len(poses) < 25:
        return {}
    arr = np.asarray(poses, dtype=np.float64)
    try:
        drive_log: DriveLog = kinematics_from_poses(arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3])
        return comfort_metrics(drive_log)
    except ValueError as exc:
        log.warning("comfort metrics skipped: %s", exc)
        return {}


def _save_frames(out: Path, step: int, obs: Observation, every_frame: int, every_strip: int) -> None:
    from drive_vla.episode_io import frame_path, save_observation

    if every_frame and step % every_frame == 0:
        save_observation(frame_path(out, step), obs)
    if every_strip and step % every_strip == 0:
        import cv2

        front = obs.images["CAM_FRONT"]
        cv2.imwrite(str(out / "frames" / f"strip_{step:05d}.png"), cv2.cvtColor(front, cv2.COLOR_RGB2BGR))
