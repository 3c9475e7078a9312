"""Pure geometry of a planned path for the controllers: timed points, desired speed, aim point, odometry."""

from __future__ import annotations

import math

import numpy as np

from drive_vla.types import Trajectory


def timed_path(trajectory: Trajectory) -> tuple[np.ndarray, np.ndarray]:
    """The plan as a timed polyline that starts at the ego origin.

    Returns:
        times_s: (M,) 0 followed by the times of the valid waypoints.
        xy: (M, 2) the origin followed by the valid waypoints, plan-time ego frame (x forward, y left).
    """
    idx = np.flatnonzero(trajectory.mask)
    times = np.concatenate([[0.0], (idx + 1) * float(trajectory.dt_s)])
    xy = np.concatenate([np.zeros((1, 2)), np.asarray(trajectory.xy, dtype=np.float64)[idx]], axis=0)
    return times, xy


def path_length_m(xy: np.ndarray) -> float:
    """Length of a (M, 2) polyline."""
    if len(xy) < 2:
        return 0.0
    return float(np.linalg.norm(np.diff(xy, axis=0), axis=1).sum())


def position_at(times_s: np.ndarray, xy: np.ndarray, t_s: float) -> np.ndarray:
    """(2,) position at time ``t_s`` by linear interpolation, clamped to the plan's span."""
    t = min(max(float(t_s), float(times_s[0])), float(times_s[-1]))
    return np.array([np.interp(t, times_s, xy[:, 0]), np.interp(t, times_s, xy[:, 1])])


def desired_speed_mps(times_s: np.ndarray, xy: np.ndarray, start_s: float, end_s: float) -> float:
    """Mean planned speed between plan times ``start_s`` and ``end_s``: path length / duration.

    The window is clamped to the plan's span; a plan that ends before ``start_s`` (stale, or only the
    origin) asks for 0 m/s.
    """
    horizon = float(times_s[-1])
    if horizon <= 0.0 or start_s >= horizon:
        return 0.0
    end = min(float(end_s), horizon)
    inner = (times_s > start_s) & (times_s < end)
    pts = np.concatenate([position_at(times_s, xy, start_s)[None], xy[inner], position_at(times_s, xy, end)[None]])
    return path_length_m(pts) / (end - float(start_s))


def curve_speed_mps(
    xy: np.ndarray, max_lateral_accel_mps2: float, decel_mps2: float, min_segment_m: float = 1.0
) -> float:
    """The highest speed now from which the car can take every bend of the path within a lateral
    acceleration bound, braking at ``decel_mps2`` before each bend: min over vertices of
    sqrt(a_lat / curvature + 2 * decel * arc length to the vertex). Curvature at a vertex is the turn between
    its two segments over their mean length; vertices beside a segment shorter than ``min_segment_m`` (a slow
    or stopping plan, whose direction is noise) are skipped. ``inf`` when no vertex bends."""
    if len(xy) < 3:
        return math.inf
    seg = np.diff(np.asarray(xy, dtype=np.float64), axis=0)
    length = np.linalg.norm(seg, axis=1)
    heading = np.arctan2(seg[:, 1], seg[:, 0])
    turn = np.abs((np.diff(heading) + math.pi) % (2.0 * math.pi) - math.pi)
    mean_len = 0.5 * (length[:-1] + length[1:])
    ok = (length[:-1] >= min_segment_m) & (length[1:] >= min_segment_m) & (turn > 1e-6)
    if not ok.any():
        return math.inf
    kappa = turn[ok] / mean_len[ok]
    arc = np.cumsum(length)[:-1][ok]  # arc length from the ego to each vertex
    return float(np.sqrt(max_lateral_accel_mps2 / kappa + 2.0 * decel_mps2 * arc).min())


def _project_onto_polyline(xy: np.ndarray, point: np.ndarray) -> float:
    """Arc length of the polyline point closest to ``point``."""
    seg = np.diff(xy, axis=0)
    seg_len = np.linalg.norm(seg, axis=1)
    best_s, best_d, s0 = 0.0, math.inf, 0.0
    for a, v, length in zip(xy[:-1], seg, seg_len):
        u = 0.0 if length < 1e-9 else float(np.clip(np.dot(point - a, v) / (length * length), 0.0, 1.0))
        d = float(np.linalg.norm(a + u * v - point))
        if d < best_d:
            best_d, best_s = d, s0 + u * length
        s0 += length
    return best_s


def point_at_arc_length(xy: np.ndarray, s_m: float) -> np.ndarray:
    """(2,) point at arc length ``s_m`` along the polyline; past the end, extended along the last segment."""
    seg = np.diff(xy, axis=0)
    seg_len = np.linalg.norm(seg, axis=1)
    s = 0.0
    for a, v, length in zip(xy[:-1], seg, seg_len):
        if length > 1e-9 and s + length >= s_m:
            return a + v * ((s_m - s) / length)
        s += length
    moving = np.flatnonzero(seg_len > 1e-3)
    if len(moving) == 0:
        return xy[-1].copy()
    last = int(moving[-1])
    return xy[-1] + seg[last] / seg_len[last] * (s_m - s)


def aim_point(xy_now: np.ndarray, aim_distance_m: float) -> np.ndarray:
    """The point ``aim_distance_m`` ahead along the path of the car's closest point on it.

    Args:
        xy_now: (M, 2) the plan's polyline in the CURRENT ego frame (car at the origin).
        aim_distance_m: arc length to look ahead.
    """
    if len(xy_now) < 2:
        return np.asarray(xy_now[-1], dtype=np.float64).copy()
    s0 = _project_onto_polyline(xy_now, np.zeros(2))
    return point_at_arc_length(xy_now, s0 + aim_distance_m)


def odometry_step(pose_xyyaw: np.ndarray, speed_mps: float, yaw_rate_rps: float, dt_s: float) -> np.ndarray:
    """Advance a planar pose (in the plan's frame) by speed and yaw rate over dt (midpoint heading)."""
    x, y, yaw = (float(v) for v in pose_xyyaw)
    mid = yaw + 0.5 * yaw_rate_rps * dt_s
    return np.array(
        [x + speed_mps * math.cos(mid) * dt_s, y + speed_mps * math.sin(mid) * dt_s, yaw + yaw_rate_rps * dt_s]
    )
