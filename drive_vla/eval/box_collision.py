"""Box-vs-box collision with headings (shapely polygons): a diagnostic, NOT a published protocol.

The published metrics (occupancy.py) use an axis-aligned ego footprint on a 0.5 m grid. This check
instead places the ego rectangle (1.85 m x 4.084 m, centre 0.5 m ahead of the LiDAR origin along the
planned heading) rotated by the planned heading and intersects it exactly with the agent boxes.
All inputs are in the current LiDAR frame (x right, y forward); headings are CCW from LiDAR +x, so
"straight ahead" is pi/2.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import shapely

from drive_vla.eval.occupancy import (
    EGO_CENTRE_AHEAD_M,
    EGO_LENGTH_M,
    EGO_WIDTH_M,
    GROUP_CODE,
    AgentBoxes,
)

STRAIGHT_AHEAD_LIDAR_RAD = np.pi / 2


def path_headings(
    traj_xy: np.ndarray, initial_rad: float = STRAIGHT_AHEAD_LIDAR_RAD, min_step_m: float = 0.1
) -> np.ndarray:
    """Headings (N, T) along waypoint paths (N, T, 2) that start at the origin.

    The heading at step k is the direction from waypoint k-1 (the origin for k = 0) to waypoint k; where
    the ego moves less than ``min_step_m`` in a step the previous heading is kept.
    """
    xy = np.asarray(traj_xy, dtype=np.float64)
    prev = np.concatenate([np.zeros_like(xy[:, :1]), xy[:, :-1]], axis=1)
    d = xy - prev
    moving = np.linalg.norm(d, axis=-1) >= min_step_m
    out = np.empty(xy.shape[:2])
    last = np.full(xy.shape[0], float(initial_rad))
    for k in range(xy.shape[1]):
        last = np.where(moving[:, k], np.arctan2(d[:, k, 1], d[:, k, 0]), last)
        out[:, k] = last
    return out


def ego_box_corners(traj_xy: np.ndarray, yaw_rad: np.ndarray) -> np.ndarray:
    """(..., 4, 2) corners of the rotated ego rectangle at waypoints (..., 2) with headings (...)."""
    xy = np.asarray(traj_xy, dtype=np.float64)
    c, s = np.cos(yaw_rad)[..., None], np.sin(yaw_rad)[..., None]
    u = np.array([1.0, -1.0, -1.0, 1.0]) * EGO_LENGTH_M / 2 + EGO_CENTRE_AHEAD_M
    v = np.array([1.0, 1.0, -1.0, -1.0]) * EGO_WIDTH_M / 2
    x = xy[..., :1] + c * u - s * v
    y = xy[..., 1:] + s * u + c * v
    return np.stack([x, y], axis=-1)


def box_collisions(
    traj_xy: np.ndarray,
    yaw_rad: np.ndarray,
    boxes: AgentBoxes,
    groups: Sequence[str] = ("vehicle", "pedestrian"),
) -> np.ndarray:
    """(N, T) bool: the rotated ego rectangle at each waypoint intersects an agent box of ``groups``.

    Args:
        traj_xy: (N, T, 2) waypoints, LiDAR frame.
        yaw_rad: (N, T) ego headings, CCW from LiDAR +x.
        boxes: agent boxes (``boxes.sample`` indexes N, ``boxes.step`` indexes T).
        groups: group names counted as obstacles.
    """
    xy = np.asarray(traj_xy, dtype=np.float64)
    if xy.ndim != 3 or xy.shape[2] != 2:
        raise ValueError(f"traj_xy: got shape {xy.shape}, expected (N, T, 2)")
    if np.shape(yaw_rad) != xy.shape[:2]:
        raise ValueError(f"yaw_rad: got shape {np.shape(yaw_rad)}, expected {xy.shape[:2]}")
    if not (np.all(np.isfinite(xy)) and np.all(np.isfinite(yaw_rad))):
        raise ValueError("traj_xy/yaw_rad: got NaN or inf, expected finite values")
    n, t_steps = xy.shape[:2]
    out = np.zeros((n, t_steps), dtype=bool)
    codes = [GROUP_CODE[g] for g in groups]
    sel = np.flatnonzero(np.isin(boxes.group, codes))
    if sel.size == 0:
        return out
    s, k = boxes.sample[sel], boxes.step[sel]
    ego_corners = ego_box_corners(xy, np.asarray(yaw_rad, dtype=np.float64))  # (N, T, 4, 2)
    ego_centre = ego_corners.mean(axis=2)  # (N, T, 2)
    ego_radius = 0.5 * np.hypot(EGO_LENGTH_M, EGO_WIDTH_M)
    box_radius = 0.5 * np.hypot(boxes.length_m[sel], boxes.width_m[sel])
    dist = np.linalg.norm(boxes.xy[sel] - ego_centre[s, k], axis=-1)
    near = dist <= ego_radius + box_radius + 1e-6
    if not near.any():
        return out
    sel, s, k = sel[near], s[near], k[near]
    agent_corners = AgentBoxes(
        boxes.sample[sel],
        k,
        boxes.xy[sel],
        boxes.length_m[sel],
        boxes.width_m[sel],
        boxes.yaw_rad[sel],
        boxes.group[sel],
    ).corners()
    hit = shapely.intersects(shapely.polygons(ego_corners[s, k]), shapely.polygons(agent_corners))
    out[s[hit], k[hit]] = True
    return out
