"""Drawing primitives for the figures: colours, ground-plane trajectories and 3D boxes in a camera, text wrapping."""

from __future__ import annotations

import cv2
import numpy as np

from drive_vla import geometry

# RGB colours shared by every figure (and by tests that look for them).
PRED_RGB = (255, 0, 200)  # predicted trajectory
GT_RGB = (0, 210, 90)  # ground-truth trajectory
BOX_RGB = (255, 200, 0)  # other agents
HISTORY_RGB = (170, 170, 170)
EGO_RGB = (60, 140, 255)
BACKGROUND_RGB = (28, 28, 32)
TEXT_RGB = (235, 235, 235)
GRID_RGB = (70, 70, 78)

FONT = cv2.FONT_HERSHEY_SIMPLEX
BOX_EDGES = ((0, 1), (1, 2), (2, 3), (3, 0), (4, 5), (5, 6), (6, 7), (7, 4), (0, 4), (1, 5), (2, 6), (3, 7))
GROUND_STEP_M = 0.25  # sampling of ground polylines before projection, so culling cuts them cleanly


def densify(xy: np.ndarray, step_m: float = GROUND_STEP_M) -> np.ndarray:
    """(N, 2) polyline -> (M, 2) points every ``step_m`` along it (vertices kept)."""
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    if len(xy) < 2:
        return xy
    out = [xy[:1]]
    for a, b in zip(xy[:-1], xy[1:]):
        n = max(1, int(np.ceil(np.linalg.norm(b - a) / step_m)))
        t = np.linspace(0.0, 1.0, n + 1)[1:, None]
        out.append(a + t * (b - a))
    return np.concatenate(out)


def to_tile_px(uv: np.ndarray, scale: tuple[float, float]) -> np.ndarray:
    """Camera pixels -> pixels of the same image resized by ``scale`` (pixel-centre convention)."""
    uv = np.asarray(uv, dtype=np.float64)
    return np.stack([(uv[:, 0] + 0.5) * scale[0] - 0.5, (uv[:, 1] + 0.5) * scale[1] - 0.5], axis=1)


def _runs(valid: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) index ranges of consecutive True values."""
    runs, start = [], None
    for i, v in enumerate(valid):
        if v and start is None:
            start = i
        if not v and start is not None:
            runs.append((start, i))
            start = None
    if start is not None:
        runs.append((start, len(valid)))
    return runs


def _clip_px(p: np.ndarray) -> np.ndarray:
    return np.round(np.clip(p, -1e5, 1e5)).astype(np.int32)


def draw_ground_path(
    tile: np.ndarray,
    xy_ego: np.ndarray,
    cam2ego: np.ndarray,
    intrinsics: np.ndarray,
    scale: tuple[float, float],
    color: tuple[int, int, int],
    thickness: int = 3,
    dot_radius: int = 4,
    near_m: float = 0.5,
    start_at_ego: bool = True,
) -> int:
    """Draw a ground-plane (z = 0, ego frame) path into a camera tile, culling what lies behind the camera.

    Returns:
        How many of the path's waypoints were drawn as dots (in front of the camera and inside the tile).
    """
    pts = np.asarray(xy_ego, dtype=np.float64).reshape(-1, 2)
    if len(pts) == 0:
        return 0
    line = densify(np.concatenate([np.zeros((1, 2)), pts]) if start_at_ego else pts)
    uv, _, valid = geometry.project_points(np.c_[line, np.zeros(len(line))], cam2ego, intrinsics, near_m)
    px = to_tile_px(uv, scale)
    for a, b in _runs(valid):
        if b - a >= 2:
            cv2.polylines(tile, [_clip_px(px[a:b])], False, color, thickness, cv2.LINE_AA)
    uv, _, valid = geometry.project_points(np.c_[pts, np.zeros(len(pts))], cam2ego, intrinsics, near_m)
    px = to_tile_px(uv, scale)
    h, w = tile.shape[:2]
    drawn = 0
    for (u, v), ok in zip(px, valid):
        if ok and 0 <= u < w and 0 <= v < h:
            cv2.circle(tile, (int(round(u)), int(round(v))), dot_radius, color, -1, cv2.LINE_8)
            drawn += 1
    return drawn


def draw_boxes_3d(
    tile: np.ndarray,
    xyz: np.ndarray,
    lwh: np.ndarray,
    yaw_rad: np.ndarray,
    cam2ego: np.ndarray,
    intrinsics: np.ndarray,
    scale: tuple[float, float],
    color: tuple[int, int, int] = BOX_RGB,
    near_m: float = 0.5,
) -> int:
    """Draw the edges of ego-frame 3D boxes whose two corners are in front of the camera; returns boxes drawn."""
    if len(xyz) == 0:
        return 0
    corners = geometry.box_corners(xyz, lwh, yaw_rad)  # (N, 8, 3)
    n = corners.shape[0]
    uv, _, valid = geometry.project_points(corners.reshape(-1, 3), cam2ego, intrinsics, near_m)
    px, valid = to_tile_px(uv, scale).reshape(n, 8, 2), valid.reshape(n, 8)
    h, w = tile.shape[:2]
    drawn = 0
    for i in range(n):
        if not valid[i].any():
            continue
        p = px[i][valid[i]]
        if p[:, 0].max() < 0 or p[:, 0].min() >= w or p[:, 1].max() < 0 or p[:, 1].min() >= h:
            continue
        for a, b in BOX_EDGES:
            if valid[i, a] and valid[i, b]:
                cv2.line(tile, tuple(_clip_px(px[i, a])), tuple(_clip_px(px[i, b])), color, 1, cv2.LINE_8)
        drawn += 1
    return drawn


def ascii_text(text: str) -> str:
    """Hershey fonts draw ASCII only: replace the rest."""
    return text.encode("ascii", "replace").decode("ascii")


def wrap_text(text: str, width_px: int, scale: float = 0.5, thickness: int = 1) -> list[str]:
    """Greedy word wrap of ``text`` (newlines kept) to lines at most ``width_px`` wide in the figure font."""
    lines: list[str] = []
    for paragraph in ascii_text(text).split("\n"):
        current = ""
        for word in paragraph.split(" "):
            trial = word if not current else f"{current} {word}"
            if cv2.getTextSize(trial, FONT, scale, thickness)[0][0] <= width_px or not current:
                current = trial
            else:
                lines.append(current)
                current = word
        lines.append(current)
    return lines


def put_label(img: np.ndarray, text: str, org: tuple[int, int], scale: float = 0.45) -> None:
    """Text on a dark box at ``org`` (top-left)."""
    text = ascii_text(text)
    (tw, th), base = cv2.getTextSize(text, FONT, scale, 1)
    x, y = org
    cv2.rectangle(img, (x, y), (x + tw + 6, y + th + base + 4), BACKGROUND_RGB, -1)
    cv2.putText(img, text, (x + 3, y + th + 2), FONT, scale, TEXT_RGB, 1, cv2.LINE_AA)
