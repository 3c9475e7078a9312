"""Per-sample figure: the six cameras with projected trajectories and boxes, a bird's-eye panel and the text."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from drive_vla import geometry
from drive_vla.types import Boxes, Observation, Plan, Sample, Trajectory
from drive_vla.viz.draw import (
    BACKGROUND_RGB,
    BOX_RGB,
    EGO_RGB,
    FONT,
    GRID_RGB,
    GT_RGB,
    HISTORY_RGB,
    PRED_RGB,
    TEXT_RGB,
    draw_boxes_3d,
    draw_ground_path,
    put_label,
    wrap_text,
)

# nuScenes viewer layout: front-left, front, front-right / back-left, back, back-right.
CAMERA_LAYOUT: tuple[tuple[str, ...], ...] = (
    ("CAM_FRONT_LEFT", "CAM_FRONT", "CAM_FRONT_RIGHT"),
    ("CAM_BACK_LEFT", "CAM_BACK", "CAM_BACK_RIGHT"),
)
EGO_LENGTH_M, EGO_WIDTH_M = 4.084, 1.85  # nuScenes planning ego box
EGO_CENTRE_X_M = float(geometry.NUSCENES_LIDAR2EGO[0, 3]) + 0.5  # 0.5 m ahead of the LiDAR origin
TEXT_SCALE, LINE_PX, MARGIN_PX = 0.5, 20, 10


@dataclass(frozen=True)
class BevView:
    """The bird's-eye panel's mapping from ego metres (x forward up, y left to the left) to figure pixels."""

    origin_px: tuple[int, int]  # top-left of the panel
    size_px: int
    x_range_m: tuple[float, float] = (-15.0, 45.0)
    y_half_m: float = 30.0

    @property
    def px_per_m(self) -> float:
        return self.size_px / (self.x_range_m[1] - self.x_range_m[0])

    def to_px(self, xy: np.ndarray) -> np.ndarray:
        """(N, 2) ego-frame metres -> (N, 2) figure pixels (column, row)."""
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        col = self.origin_px[0] + self.size_px / 2 - xy[:, 1] * self.px_per_m
        row = self.origin_px[1] + (self.x_range_m[1] - xy[:, 0]) * self.px_per_m
        return np.stack([col, row], axis=1)


@dataclass
class SampleFigure:
    """A rendered figure and where its panels are.

    Attributes:
        image: (H, W, 3) uint8 RGB.
        panels: panel name (camera names, "bev", "text") -> (x0, y0, x1, y1) figure pixels, end exclusive.
        camera_scale: (sx, sy) tile pixels per camera pixel.
        bev: the bird's-eye panel's mapping.
        drawn: camera name -> predicted waypoints drawn in it (in front of the camera and inside the image).
    """

    image: np.ndarray
    panels: dict[str, tuple[int, int, int, int]]
    camera_scale: tuple[float, float]
    bev: BevView
    drawn: dict[str, int] = field(default_factory=dict)

    def camera_to_figure(self, camera: str, uv: np.ndarray) -> np.ndarray:
        """(N, 2) pixels of ``camera``'s image -> (N, 2) figure pixels inside its panel."""
        x0, y0 = self.panels[camera][:2]
        uv = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
        sx, sy = self.camera_scale
        return np.stack([x0 + (uv[:, 0] + 0.5) * sx - 0.5, y0 + (uv[:, 1] + 0.5) * sy - 0.5], axis=1)

    def save(self, path: str | Path) -> Path:
        """Write the figure as PNG."""
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(out), cv2.cvtColor(self.image, cv2.COLOR_RGB2BGR)):
            raise ValueError(f"path: could not write a PNG to {str(out)!r}")
        return out


def _trajectory_xy(traj: Trajectory | None) -> np.ndarray:
    if traj is None:
        return np.zeros((0, 2))
    return np.asarray(traj.xy, dtype=np.float64)[np.asarray(traj.mask, dtype=bool)]


def _draw_bev(
    canvas: np.ndarray, view: BevView, obs: Observation, pred: np.ndarray, gt: np.ndarray, boxes: Boxes | None
) -> None:
    x0, y0 = view.origin_px
    s = view.size_px
    cv2.rectangle(canvas, (x0, y0), (x0 + s - 1, y0 + s - 1), (18, 18, 22), -1)
    for m in range(-60, 61, 10):  # 10 m grid
        (c, _), (_, r) = view.to_px([[0.0, m]])[0], view.to_px([[m, 0.0]])[0]
        if x0 <= c < x0 + s:
            cv2.line(canvas, (int(c), y0), (int(c), y0 + s - 1), GRID_RGB, 1)
        if y0 <= r < y0 + s:
            cv2.line(canvas, (x0, int(r)), (x0 + s - 1, int(r)), GRID_RGB, 1)
    sub = canvas[y0 : y0 + s, x0 : x0 + s]  # drawing through a view keeps everything inside the panel
    shift = np.array([x0, y0])

    def px(xy: np.ndarray) -> np.ndarray:
        return np.round(view.to_px(xy) - shift).astype(np.int32)

    if boxes is not None:
        for i in range(len(boxes)):
            poly = geometry.box_footprint(boxes.xyz[i, :2], boxes.lwh[i, 0], boxes.lwh[i, 1], float(boxes.yaw_rad[i]))
            cv2.polylines(sub, [px(poly)], True, BOX_RGB, 1, cv2.LINE_8)
            nose = boxes.xyz[i, :2] + 0.5 * boxes.lwh[i, 0] * np.array(
                [np.cos(boxes.yaw_rad[i]), np.sin(boxes.yaw_rad[i])]
            )
            cv2.line(sub, tuple(px(boxes.xyz[i, :2])[0]), tuple(px(nose)[0]), BOX_RGB, 1, cv2.LINE_8)
    ego = geometry.box_footprint((EGO_CENTRE_X_M, 0.0), EGO_LENGTH_M, EGO_WIDTH_M, 0.0)
    cv2.fillPoly(sub, [px(ego)], EGO_RGB)
    for p in px(obs.history[:, :2]):
        cv2.circle(sub, tuple(p), 2, HISTORY_RGB, -1)
    for xy, color in ((gt, GT_RGB), (pred, PRED_RGB)):
        if len(xy):
            line = px(np.concatenate([np.zeros((1, 2)), xy]))
            cv2.polylines(sub, [line], False, color, 2, cv2.LINE_AA)
            for p in line[1:]:
                cv2.circle(sub, tuple(p), 3, color, -1)
    for i, (label, color) in enumerate((("predicted", PRED_RGB), ("ground truth", GT_RGB), ("agents", BOX_RGB))):
        y = 8 + 16 * i
        cv2.rectangle(sub, (8, y), (20, y + 10), color, -1)
        cv2.putText(sub, label, (26, y + 10), FONT, 0.4, TEXT_RGB, 1, cv2.LINE_AA)
    cv2.putText(sub, "BEV 10 m grid", (8, s - 8), FONT, 0.4, TEXT_RGB, 1, cv2.LINE_AA)


def _text_lines(
    obs: Observation, plan: Plan | None, pred: np.ndarray, gt: np.ndarray, text: str | None, title: str
) -> list[str]:
    lines = [title] if title else []
    lines.append(
        f"instruction: {obs.instruction} | command: {obs.command.name} | speed {obs.ego.speed_mps:.1f} m/s"
        f" | steer {obs.ego.steer:+.2f} | t = {obs.timestamp_s:.2f} s"
    )
    if plan is not None:
        parts = [f"meta-action: {plan.meta_action or '-'}"]
        if plan.controls is not None:
            c = plan.controls
            parts.append(f"controls: steer {c.steer:+.2f} throttle {c.throttle:.2f} brake {c.brake:.2f}")
        if len(pred):
            parts.append(f"end point {pred[-1, 0]:.1f} m ahead, {pred[-1, 1]:+.1f} m left")
        lines.append(" | ".join(parts))
    if len(pred) and len(gt) and len(pred) == len(gt):
        l2 = np.linalg.norm(pred - gt, axis=1)
        lines.append(f"L2 to ground truth: mean {l2.mean():.2f} m, final {l2[-1]:.2f} m")
    if text:
        lines.append(f"explanation: {text}")
    return lines


def render_sample_figure(
    obs: Observation,
    plan: Plan | Trajectory | None = None,
    *,
    gt: Trajectory | None = None,
    boxes: Boxes | None = None,
    text: str | None = None,
    title: str = "",
    tile_width: int = 400,
) -> SampleFigure:
    """Render one observation with its plan.

    Args:
        obs: the observation (its own intrinsics/extrinsics are used for projection).
        plan: the predicted Plan (or a bare Trajectory); drawn in PRED_RGB on the ground (z = 0, ego frame).
        gt: ground-truth future trajectory; drawn in GT_RGB (only valid waypoints).
        boxes: other agents in the ego frame; 3D boxes in the cameras, footprints in the BEV panel.
        text: explanation text; defaults to ``plan.text``.
        title: first line of the text panel.
        tile_width: width of each camera tile in pixels (height keeps the image's aspect ratio).

    Returns:
        The figure and its panel layout.
    """
    if tile_width < 64:
        raise ValueError(f"tile_width: got {tile_width}, expected at least 64 pixels")
    if isinstance(plan, Trajectory):
        plan = Plan(trajectory=plan)
    h, w = obs.image_hw
    tile_w = int(tile_width)
    tile_h = max(1, int(round(tile_w * h / w)))
    scale = (tile_w / w, tile_h / h)
    pred = _trajectory_xy(plan.trajectory if plan is not None else None)
    gt_xy = _trajectory_xy(gt)
    text = text if text is not None else (plan.text if plan is not None else None)

    bev_size = 2 * tile_h
    fig_w = 3 * tile_w + bev_size
    lines = wrap_text("\n".join(_text_lines(obs, plan, pred, gt_xy, text, title)), fig_w - 2 * MARGIN_PX, TEXT_SCALE)
    text_h = 2 * MARGIN_PX + LINE_PX * len(lines)
    canvas = np.empty((2 * tile_h + text_h, fig_w, 3), dtype=np.uint8)
    canvas[:] = BACKGROUND_RGB
    panels: dict[str, tuple[int, int, int, int]] = {}
    drawn: dict[str, int] = {}
    thickness = max(2, tile_w // 150)
    for row, cams in enumerate(CAMERA_LAYOUT):
        for col, cam in enumerate(cams):
            tile = cv2.resize(
                obs.images[cam], (tile_w, tile_h), interpolation=cv2.INTER_AREA if scale[0] < 1 else cv2.INTER_LINEAR
            )
            k, cam2ego = obs.intrinsics[cam], obs.extrinsics[cam]
            if boxes is not None:
                draw_boxes_3d(tile, boxes.xyz, boxes.lwh, boxes.yaw_rad, cam2ego, k, scale)
            if len(gt_xy):
                draw_ground_path(tile, gt_xy, cam2ego, k, scale, GT_RGB, thickness)
            drawn[cam] = draw_ground_path(tile, pred, cam2ego, k, scale, PRED_RGB, thickness) if len(pred) else 0
            put_label(tile, cam, (4, 4))
            x0, y0 = col * tile_w, row * tile_h
            canvas[y0 : y0 + tile_h, x0 : x0 + tile_w] = tile
            panels[cam] = (x0, y0, x0 + tile_w, y0 + tile_h)
    view = BevView(origin_px=(3 * tile_w, 0), size_px=bev_size)
    _draw_bev(canvas, view, obs, pred, gt_xy, boxes)
    panels["bev"] = (3 * tile_w, 0, fig_w, bev_size)
    y = 2 * tile_h + MARGIN_PX
    for line in lines:
        cv2.putText(canvas, line, (MARGIN_PX, y + LINE_PX - 6), FONT, TEXT_SCALE, TEXT_RGB, 1, cv2.LINE_AA)
        y += LINE_PX
    panels["text"] = (0, 2 * tile_h, fig_w, canvas.shape[0])
    return SampleFigure(canvas, panels, scale, view, drawn)


def render_sample(sample: Sample, plan: Plan | None = None, *, text: str | None = None, **kwargs) -> SampleFigure:
    """Render a dataset Sample: its future trajectory as ground truth and, when present, the agents' boxes
    at the first future step (+0.5 s, the nearest the targets carry) in the current ego frame."""
    boxes = sample.targets.future_boxes[0] if sample.targets.future_boxes else None
    title = kwargs.pop(
        "title", f"sample {sample.meta.token}" + (f" ({sample.meta.scene})" if sample.meta.scene else "")
    )
    return render_sample_figure(
        sample.observation, plan, gt=sample.targets.trajectory, boxes=boxes, text=text, title=title, **kwargs
    )


def save_sample_figure(path: str | Path, obs: Observation, plan: Plan | Trajectory | None = None, **kwargs) -> Path:
    """``render_sample_figure(obs, plan, **kwargs).save(path)``."""
    return render_sample_figure(obs, plan, **kwargs).save(path)
