"""One picture of a sample: the six cameras with the GT future path and GT boxes projected, plus a BEV panel."""

from __future__ import annotations

import os

import cv2
import numpy as np

from drive_vla import geometry as g
from drive_vla.types import Boxes, Sample

# nuScenes-style layout: front cameras on top, back cameras below (as seen from the driver's seat).
CAMERA_GRID = (("CAM_FRONT_LEFT", "CAM_FRONT", "CAM_FRONT_RIGHT"), ("CAM_BACK_LEFT", "CAM_BACK", "CAM_BACK_RIGHT"))
BOX_EDGES = ((0, 1), (1, 2), (2, 3), (3, 0), (4, 5), (5, 6), (6, 7), (7, 4), (0, 4), (1, 5), (2, 6), (3, 7))
TRAJ_COLOR = (0, 220, 0)  # RGB
HIST_COLOR = (160, 160, 160)
EGO_LENGTH_M, EGO_WIDTH_M = 4.084, 1.85


def category_color(category: str) -> tuple[int, int, int]:
    """RGB colour of a nuScenes category family."""
    if category.startswith("human."):
        return (40, 120, 255)
    if category.startswith("vehicle."):
        return (255, 140, 0)
    return (200, 200, 200)


def _draw_camera(image: np.ndarray, cam: str, sample: Sample, boxes: Boxes, thickness: int) -> np.ndarray:
    obs = sample.observation
    img = np.ascontiguousarray(image.copy())
    h, w = img.shape[:2]
    k, cam2ego = obs.intrinsics[cam], obs.extrinsics[cam]
    if len(boxes):
        corners_uv, visible = g.project_boxes(boxes.xyz, boxes.lwh, boxes.yaw_rad, cam2ego, k, (w, h))
        corners = g.box_corners(boxes.xyz, boxes.lwh, boxes.yaw_rad)
        _, _, corner_ok = g.project_points(corners.reshape(-1, 3), cam2ego, k)
        corner_ok = corner_ok.reshape(-1, 8)
        for i in np.flatnonzero(visible):
            color = category_color(boxes.category[i] if boxes.category else "")
            for a, b in BOX_EDGES:
                if corner_ok[i, a] and corner_ok[i, b]:
                    pa, pb = corners_uv[i, a], corners_uv[i, b]
                    if np.all(np.abs(np.concatenate([pa, pb])) < 1e5):
                        cv2.line(
                            img, tuple(int(v) for v in pa), tuple(int(v) for v in pb), color, thickness, cv2.LINE_AA
                        )
    traj = sample.targets.trajectory
    pts = np.concatenate([np.zeros((1, 2)), traj.xy[traj.mask]])
    ground = np.concatenate([pts, np.zeros((len(pts), 1))], axis=1)  # ego frame z = 0 is the road surface
    uv, _, ok = g.project_points(ground, cam2ego, k)
    for a in range(len(uv) - 1):
        if ok[a] and ok[a + 1] and np.all(np.abs(uv[a : a + 2]) < 1e5):
            cv2.line(
                img,
                tuple(int(v) for v in uv[a]),
                tuple(int(v) for v in uv[a + 1]),
                TRAJ_COLOR,
                thickness + 1,
                cv2.LINE_AA,
            )
    for p, valid in zip(uv[1:], ok[1:]):
        if valid and 0 <= p[0] < w and 0 <= p[1] < h:
            cv2.circle(img, (int(p[0]), int(p[1])), thickness + 2, TRAJ_COLOR, -1, cv2.LINE_AA)
    cv2.putText(
        img,
        cam,
        (8, 8 + int(18 * thickness)),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.5 * thickness,
        (255, 255, 255),
        thickness,
        cv2.LINE_AA,
    )
    return img


def _bev(sample: Sample, boxes: Boxes, size_px: int, range_m: float) -> np.ndarray:
    """Top view, ego at the centre, x forward = up, y left = left."""
    img = np.full((size_px, size_px, 3), 30, dtype=np.uint8)
    scale = size_px / (2 * range_m)

    def px(xy: np.ndarray) -> np.ndarray:
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        return np.stack([size_px / 2 - xy[:, 1] * scale, size_px / 2 - xy[:, 0] * scale], axis=1).astype(np.int32)

    for r in range(10, int(range_m) + 1, 10):
        cv2.circle(img, (size_px // 2, size_px // 2), int(r * scale), (60, 60, 60), 1)
    for i in range(len(boxes)):
        fp = g.box_footprint(boxes.xyz[i, :2], float(boxes.lwh[i, 0]), float(boxes.lwh[i, 1]), float(boxes.yaw_rad[i]))
        color = category_color(boxes.category[i] if boxes.category else "")
        cv2.polylines(img, [px(fp)], True, color, 1, cv2.LINE_AA)
    cv2.fillPoly(img, [px(g.box_footprint(np.array([0.0, 0.0]), EGO_LENGTH_M, EGO_WIDTH_M, 0.0))], (255, 255, 255))
    hist = sample.observation.history[:, :2]
    cv2.polylines(img, [px(np.concatenate([hist, np.zeros((1, 2))]))], False, HIST_COLOR, 2, cv2.LINE_AA)
    traj = sample.targets.trajectory
    future = px(np.concatenate([np.zeros((1, 2)), traj.xy[traj.mask]]))
    cv2.polylines(img, [future], False, TRAJ_COLOR, 2, cv2.LINE_AA)
    for p in future[1:]:
        cv2.circle(img, tuple(int(v) for v in p), 3, TRAJ_COLOR, -1, cv2.LINE_AA)
    label = f"{sample.observation.command.name}  {sample.observation.ego.speed_mps:.1f} m/s ({sample.observation.ego.source})"
    cv2.putText(img, label, (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return img


def render_sample(sample: Sample, boxes: Boxes, tile_w: int = 480) -> np.ndarray:
    """(H, W, 3) uint8 RGB picture: 2x3 camera grid (GT path green, boxes by category) and a BEV panel."""
    obs = sample.observation
    h0, w0 = obs.image_hw
    tile_h = max(1, round(tile_w * h0 / w0))
    thickness = max(1, round(w0 / 640))
    rows = []
    for row in CAMERA_GRID:
        tiles = [
            cv2.resize(
                _draw_camera(obs.images[c], c, sample, boxes, thickness), (tile_w, tile_h), interpolation=cv2.INTER_AREA
            )
            for c in row
        ]
        rows.append(np.concatenate(tiles, axis=1))
    grid = np.concatenate(rows, axis=0)
    bev = _bev(sample, boxes, grid.shape[0], range_m=50.0)
    return np.concatenate([grid, bev], axis=1)


def save_picture(image: np.ndarray, path: str | os.PathLike) -> None:
    """Write an RGB picture (PNG/JPEG by extension); ValueError naming the path on failure."""
    if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise ValueError(
            f"out: could not write a picture to {path} (expected a .png or .jpg path in an existing folder)"
        )
