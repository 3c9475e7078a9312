"""Route target points: which points of a route the car drives to next (TCP / TransFuser++ route planner).

A route is a list of points in a right-handed planar frame (the embedded world's global frame, or the
metric frame the CARLA agent builds from the leaderboard's GPS plan). Each step the planner drops the
points the car has reached and hands out the next ones; `geometry.global_points_to_local` puts them in
the ego frame, where they become ``Observation.route_target``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from drive_vla.types import check_route_target

log = logging.getLogger(__name__)


class RoutePlanner:
    """Keeps the route ahead of the car and yields its next target points.

    On each ``advance`` it looks at the route points within the first ``max_distance_m`` metres of route
    still ahead, finds the furthest one lying within ``min_distance_m`` of the car, and drops every point
    before it (always keeping two). The targets are then the points after the current one.

    Args:
        min_distance_m: a point this close to the car counts as reached (TCP 4 m, TransFuser++ 7.5 m).
        max_distance_m: only this much route ahead is searched, so a loop in the route is not skipped.
    """

    def __init__(self, min_distance_m: float = 4.0, max_distance_m: float = 50.0) -> None:
        if not 0.0 < min_distance_m < max_distance_m:
            raise ValueError(
                f"route planner distances: got min {min_distance_m!r}, max {max_distance_m!r}, expected 0 < min < max"
            )
        self.min_distance_m, self.max_distance_m = float(min_distance_m), float(max_distance_m)
        self.points = np.zeros((0, 2))
        self.total = 0

    def set_route(self, points_xy: np.ndarray) -> None:
        """The route as (N, 2) points, N > 0, in the planner's planar frame, metres."""
        pts = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)
        if len(pts) == 0:
            raise ValueError("route: got no points, expected at least one (x, y)")
        if not np.all(np.isfinite(pts)):
            raise ValueError("route points: found NaN or inf, expected finite metres")
        self.points, self.total = pts, len(pts)

    @property
    def empty(self) -> bool:
        return len(self.points) == 0

    def advance(self, xy: Sequence[float]) -> int:
        """Drop the points a car at ``xy`` has reached; returns how many were dropped."""
        if self.empty:
            raise ValueError("route: no route set, call set_route first")
        car = np.asarray(xy, dtype=np.float64)
        if car.shape != (2,) or not np.all(np.isfinite(car)):
            raise ValueError(f"car position: got {xy!r}, expected finite (x, y) metres")
        drop, along = 0, 0.0
        for i in range(1, len(self.points)):
            along += float(np.linalg.norm(self.points[i] - self.points[i - 1]))
            if along > self.max_distance_m:
                break
            if float(np.linalg.norm(self.points[i] - car)) <= self.min_distance_m:
                drop = i
        drop = min(drop, max(len(self.points) - 2, 0))
        if drop:
            self.points = self.points[drop:]
        return drop

    @property
    def target_index(self) -> int:
        """Index in ``points`` of the next target (the point after the current one, or the last)."""
        return 1 if len(self.points) > 1 else 0

    def targets(self, n: int) -> np.ndarray:
        """(n, 2) the next ``n`` target points, nearest first; the route's last point repeats past its end."""
        if self.empty:
            raise ValueError("route: no route set, call set_route first")
        k = self.target_index
        idx = np.minimum(np.arange(k, k + n), len(self.points) - 1)
        return self.points[idx].copy()


def sample_polyline(xy: np.ndarray, spacing_m: float) -> np.ndarray:
    """(M, 2) points every ``spacing_m`` metres along an (N, 2) polyline, its first and last point included."""
    pts = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    if spacing_m <= 0:
        raise ValueError(f"spacing_m: got {spacing_m!r}, expected > 0 metres")
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))])
    s = np.arange(0.0, arc[-1], spacing_m)
    s = np.append(s, arc[-1]) if len(s) == 0 or arc[-1] - s[-1] > 1e-6 else s
    return np.stack([np.interp(s, arc, pts[:, 0]), np.interp(s, arc, pts[:, 1])], axis=1)


def usable_route_target(points_ego: np.ndarray, where: str = "route_target") -> np.ndarray | None:
    """``points_ego`` as float32 when they are finite and within MAX_ROUTE_TARGET_M of the ego; otherwise
    None, with a logged fault that names the field (the policy then drives on its "no target" input).

    A car far off its route (or a route planner left behind) must not turn into an observation that
    cannot be built: the drive loop would lose the route to an environment error.
    """
    arr = np.asarray(points_ego, dtype=np.float32)
    try:
        check_route_target(where, arr)
    except ValueError as exc:
        log.warning("%s; driving without a route target", exc)
        return None
    return arr
