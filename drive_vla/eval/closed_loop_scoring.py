"""Closed-loop scoring as pure functions: CARLA-leaderboard route and driving scores, Bench2Drive success,
comfort windows and mean speed.

Route score (leaderboard): route completion (%) x infraction penalty, where the penalty is the product
of one factor per infraction event:

* pedestrian collision 0.5, vehicle collision 0.6, static collision 0.65, red light 0.7, stop sign 0.8,
  scenario timeout 0.7, not yielding to an emergency vehicle 0.7;
* outside route lanes (off-road, or driving in lanes that are not the route's): the leaderboard's
  percentage rule, factor = 1 - (percent of the route driven outside the route lanes) / 100;
* route deviation (more than 30 m off the route), agent blocked (60 s below 0.1 m/s in Bench2Drive)
  and route timeout END the route without a penalty factor: their cost is the route completion lost.
  They still count as infractions for Bench2Drive success.

The leaderboard's minimum-speed infraction is not modelled (no backend here measures surrounding traffic
speed). Driving score = mean route score over all routes; failed routes (simulator or agent crash) and
expected routes with no record count 0. Bench2Drive success = the route was completed (100 %) with no
infraction of any kind. All scores are in percent (0..100) as published.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

PENALTY_FACTORS: dict[str, float] = {
    "collision_pedestrian": 0.5,
    "collision_vehicle": 0.6,
    "collision_static": 0.65,
    "red_light": 0.7,
    "stop_sign": 0.8,
    "scenario_timeout": 0.7,
    "yield_emergency_vehicle": 0.7,
}
PERCENT_INFRACTIONS = ("outside_route_lanes",)
ROUTE_ENDING_INFRACTIONS = ("route_deviation", "agent_blocked", "route_timeout")
INFRACTION_KINDS = (*PENALTY_FACTORS, *PERCENT_INFRACTIONS, *ROUTE_ENDING_INFRACTIONS)
ROUTE_STATUSES = ("completed", "ended", "failed")


@dataclass(frozen=True)
class Infraction:
    """One infraction event.

    Attributes:
        kind: one of INFRACTION_KINDS.
        time_s: when it happened (informative).
        percent: for "outside_route_lanes": percent (0..100) of the route driven outside the route lanes.
        detail: free text (e.g. the other actor).
    """

    kind: str
    time_s: float | None = None
    percent: float | None = None
    detail: str = ""

    def __post_init__(self) -> None:
        if self.kind not in INFRACTION_KINDS:
            raise ValueError(f"infraction.kind: got {self.kind!r}, expected one of {list(INFRACTION_KINDS)}")
        if self.kind in PERCENT_INFRACTIONS:
            if self.percent is None or not 0.0 <= float(self.percent) <= 100.0:
                raise ValueError(f"infraction.percent: got {self.percent!r}, expected 0..100 for {self.kind!r}")

    def factor(self) -> float:
        """Multiplicative penalty of this event (1.0 for route-ending events)."""
        if self.kind in PENALTY_FACTORS:
            return PENALTY_FACTORS[self.kind]
        if self.kind in PERCENT_INFRACTIONS:
            return 1.0 - float(self.percent) / 100.0
        return 1.0


@dataclass(frozen=True)
class RouteRecord:
    """The outcome of one route.

    Attributes:
        route_id: route name.
        completion: route completion as a fraction 0..1.
        infractions: the infraction events.
        status: "completed" (ran to its end or its goal), "ended" (stopped early by a route-ending rule),
            "failed" (simulator or agent crash: scores 0).
        duration_s: simulated time, for infractions per time (optional).
        distance_m: distance driven, for infractions per km (optional).
        mean_speed_mps: mean ego speed (optional, see mean_speed).
        comfort_pct: percent of comfortable windows (optional, see comfort_metrics).
    """

    route_id: str
    completion: float
    infractions: tuple[Infraction, ...] = ()
    status: str = "completed"
    duration_s: float | None = None
    distance_m: float | None = None
    mean_speed_mps: float | None = None
    comfort_pct: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "infractions", tuple(self.infractions))
        if not 0.0 <= float(self.completion) <= 1.0 + 1e-9:
            raise ValueError(f"route.completion: got {self.completion!r}, expected a fraction in [0, 1]")
        if self.status not in ROUTE_STATUSES:
            raise ValueError(f"route.status: got {self.status!r}, expected one of {list(ROUTE_STATUSES)}")


def infraction_penalty(infractions: Iterable[Infraction]) -> float:
    """Product of the penalty factors of the events (1.0 with none)."""
    return float(np.prod([i.factor() for i in infractions], dtype=np.float64))


def is_success(record: RouteRecord) -> bool:
    """Bench2Drive success: the route was completed (100 %) with no infraction at all."""
    return record.status == "completed" and record.completion >= 1.0 - 1e-9 and not record.infractions


def route_score(record: RouteRecord) -> dict[str, Any]:
    """{"route_id", "route_completion", "infraction_penalty", "driving_score", "success"} (scores in %)."""
    failed = record.status == "failed"
    rc = 0.0 if failed else 100.0 * min(float(record.completion), 1.0)
    penalty = infraction_penalty(record.infractions)
    return {
        "route_id": record.route_id,
        "status": record.status,
        "route_completion": rc,
        "infraction_penalty": penalty,
        "driving_score": 0.0 if failed else rc * penalty,
        "success": is_success(record),
    }


def summarize_routes(records: Sequence[RouteRecord], expected_route_ids: Sequence[str] | None = None) -> dict[str, Any]:
    """Leaderboard-style totals over routes.

    Args:
        records: one record per route that ran.
        expected_route_ids: the full route list; routes in it without a record count 0.

    Returns:
        driving_score, route_completion, success_rate (means over all routes, %), infraction_penalty
        (mean over routes that ran and did not fail), counts of routes, infractions per kind (and all
        collisions summed) and per km (when distances are known), mean speed and comfort (means over
        routes that report them), and the per-route scores.
    """
    ids = [r.route_id for r in records]
    if len(set(ids)) != len(ids):
        raise ValueError(f"records: got duplicate route ids {sorted({i for i in ids if ids.count(i) > 1})}")
    missing = [] if expected_route_ids is None else [r for r in expected_route_ids if r not in set(ids)]
    if expected_route_ids is not None:
        extra = sorted(set(ids) - set(expected_route_ids))
        if extra:
            raise ValueError(f"records: got routes {extra} that are not in expected_route_ids")
    routes = [route_score(r) for r in records]
    n = len(routes) + len(missing)
    if n == 0:
        raise ValueError("records: got no routes and no expected routes, expected at least one")
    ran = [s for s in routes if s["status"] != "failed"]
    counts = {k: 0 for k in INFRACTION_KINDS}
    for r in records:
        for i in r.infractions:
            counts[i.kind] += 1
    km = sum(r.distance_m for r in records if r.distance_m is not None) / 1000.0
    speeds = [r.mean_speed_mps for r in records if r.mean_speed_mps is not None]
    comfort = [r.comfort_pct for r in records if r.comfort_pct is not None]
    return {
        "driving_score": sum(s["driving_score"] for s in routes) / n,
        "route_completion": sum(s["route_completion"] for s in routes) / n,
        "success_rate": 100.0 * sum(s["success"] for s in routes) / n,
        "infraction_penalty": float(np.mean([s["infraction_penalty"] for s in ran])) if ran else None,
        "num_routes": n,
        "num_failed": len(routes) - len(ran),
        "num_missing": len(missing),
        "missing_routes": missing,
        "infractions": counts,
        "collisions": sum(v for k, v in counts.items() if k.startswith("collision")),
        "infractions_per_km": {k: v / km for k, v in counts.items()} if km > 0 else None,
        "mean_speed_mps": float(np.mean(speeds)) if speeds else None,
        "comfort_pct": float(np.mean(comfort)) if comfort else None,
        "routes": routes,
    }


# ----------------------------------------------------------------------------- comfort (Bench2Drive)

# Bench2Drive's comfort thresholds (those of nuPlan's ego-comfort metric); a 20-frame window passes when
# every quantity stays within its bounds on every frame of the window.
COMFORT_LIMITS: dict[str, tuple[float, float]] = {
    "jerk_mps3": (-8.37, 8.37),  # magnitude of the derivative of the (lon, lat) acceleration
    "lat_accel_mps2": (-4.89, 4.89),
    "lon_accel_mps2": (-4.05, 2.40),
    "yaw_accel_rps2": (-1.93, 1.93),
    "lon_jerk_mps3": (-4.13, 4.13),
    "yaw_rate_rps": (-0.95, 0.95),
}
COMFORT_WINDOW_FRAMES = 20


@dataclass(frozen=True)
class DriveLog:
    """Per-frame ego kinematics of one route (body frame: lon forward, lat left).

    Attributes:
        time_s: (T,) increasing times.
        speed_mps: (T,) forward speed.
        lon_accel_mps2: (T,) longitudinal acceleration.
        lat_accel_mps2: (T,) lateral acceleration.
        yaw_rate_rps: (T,) yaw rate, CCW positive.
    """

    time_s: np.ndarray
    speed_mps: np.ndarray
    lon_accel_mps2: np.ndarray
    lat_accel_mps2: np.ndarray
    yaw_rate_rps: np.ndarray

    def __post_init__(self) -> None:
        t = np.asarray(self.time_s, dtype=np.float64)
        for name in ("time_s", "speed_mps", "lon_accel_mps2", "lat_accel_mps2", "yaw_rate_rps"):
            v = np.asarray(getattr(self, name), dtype=np.float64)
            if v.shape != t.shape or v.ndim != 1:
                raise ValueError(f"log.{name}: got shape {v.shape}, expected {t.shape} like log.time_s (1-D)")
            if not np.all(np.isfinite(v)):
                raise ValueError(f"log.{name}: got NaN or inf, expected finite values")
            object.__setattr__(self, name, v)
        if t.size < 2 or np.any(np.diff(t) <= 0):
            raise ValueError("log.time_s: expected at least 2 strictly increasing times")


def kinematics_from_poses(time_s: np.ndarray, x_m: np.ndarray, y_m: np.ndarray, yaw_rad: np.ndarray) -> DriveLog:
    """DriveLog from planar poses in a right-handed world frame, by finite differences (np.gradient)."""
    t = np.asarray(time_s, dtype=np.float64)
    yaw = np.unwrap(np.asarray(yaw_rad, dtype=np.float64))
    vx, vy = np.gradient(np.asarray(x_m, np.float64), t), np.gradient(np.asarray(y_m, np.float64), t)
    ax, ay = np.gradient(vx, t), np.gradient(vy, t)
    c, s = np.cos(yaw), np.sin(yaw)
    return DriveLog(
        time_s=t,
        speed_mps=c * vx + s * vy,
        lon_accel_mps2=c * ax + s * ay,
        lat_accel_mps2=-s * ax + c * ay,
        yaw_rate_rps=np.gradient(yaw, t),
    )


def comfort_quantities(log: DriveLog) -> dict[str, np.ndarray]:
    """Per-frame values of every COMFORT_LIMITS quantity (derivatives by np.gradient, no smoothing)."""
    t = log.time_s
    jerk_lon = np.gradient(log.lon_accel_mps2, t)
    jerk_lat = np.gradient(log.lat_accel_mps2, t)
    return {
        "jerk_mps3": np.hypot(jerk_lon, jerk_lat),
        "lat_accel_mps2": log.lat_accel_mps2,
        "lon_accel_mps2": log.lon_accel_mps2,
        "yaw_accel_rps2": np.gradient(log.yaw_rate_rps, t),
        "lon_jerk_mps3": jerk_lon,
        "yaw_rate_rps": log.yaw_rate_rps,
    }


def comfort_metrics(log: DriveLog, window_frames: int = COMFORT_WINDOW_FRAMES) -> dict[str, Any]:
    """Share of comfortable windows (Bench2Drive style) and per-quantity statistics.

    The log is cut into consecutive windows of ``window_frames`` frames (a shorter tail is dropped unless
    the log is shorter than one window, which then forms the only window). Derivatives are raw finite
    differences: smooth noisy sensor logs before scoring them (nuPlan applies a Savitzky-Golay filter).

    Returns:
        {"comfort_pct", "windows", "failed_windows": {quantity: count}, "max_abs": {quantity: value},
        "mean_speed_mps"}.
    """
    if window_frames < 1:
        raise ValueError(f"window_frames: got {window_frames}, expected >= 1")
    q = comfort_quantities(log)
    n = len(log.time_s)
    n_win = max(1, n // window_frames)
    size = window_frames if n >= window_frames else n
    failed = {}
    ok = np.ones(n_win, dtype=bool)
    for name, (lo, hi) in COMFORT_LIMITS.items():
        v = q[name][: n_win * size].reshape(n_win, size)
        bad = ((v < lo) | (v > hi)).any(axis=1)
        failed[name] = int(bad.sum())
        ok &= ~bad
    return {
        "comfort_pct": 100.0 * float(ok.mean()),
        "windows": n_win,
        "failed_windows": failed,
        "max_abs": {name: float(np.abs(v).max()) for name, v in q.items()},
        "mean_speed_mps": mean_speed(log),
    }


def mean_speed(log: DriveLog) -> float:
    """Time-weighted mean forward speed (trapezoid rule), m/s."""
    v, t = log.speed_mps, log.time_s
    area = float(np.sum(0.5 * (v[1:] + v[:-1]) * np.diff(t)))
    return area / float(t[-1] - t[0])
