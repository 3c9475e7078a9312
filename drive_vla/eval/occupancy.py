"""BEV occupancy collision check of the published planning metrics (ST-P3, UniAD, OpenDriveVLA), vectorised.

The grid is 200 x 200 cells of 0.5 m over [-50, 50) m. Rows always index the forward axis; what the
columns index, and in which frame the agents are drawn, is each protocol's own GridLayout:

* ST-P3 (``stp3/datas/NuscenesData.py`` ``_get_poly_region_in_image``): agents in the ego frame of the
  LIDAR_TOP capture (yaw-only), columns along ego +y (left); ``stp3/metrics.py``
  ``PlanningMetric.evaluate_coll`` multiplies the LiDAR-frame waypoints by (-1, 1), so the lookup column
  is -x (left) of the LiDAR frame.
* UniAD (``projects/mmdet3d_plugin/datasets/pipelines/occflow_label.py`` ``GenerateOccFlowLabels``):
  agents in the current LiDAR frame, columns along LiDAR +x (right); ``planning_metrics.py``
  ``PlanningMetric.update`` negates x and ``evaluate_coll`` negates it back, so the lookup column is +x.
* OpenDriveVLA (``drivevla/eval_share/evaluation.py`` ``planning_evaluation``): UniAD's raster mirrored
  left-right (``torch.flip(occ, [-1])``) and its ``metric.py`` negates x once, so the lookup column is -x.

An AgentBoxes handed to the grid is in the protocol's raster frame: ``xy[:, 0]`` along the columns,
``xy[:, 1]`` along the rows, metres. Shared by all three peers:

* Boxes are rasterised per future step with ``cv2.fillPoly`` after rounding each corner to
  ``round((v + 50) / 0.5)`` (``np.round``: half to even), one polygon per call (``fillPoly`` with several
  polygons XORs overlaps). ST-P3 computes the corners in float64; UniAD (and so OpenDriveVLA's cached labels)
  in float32, which decides the corners that land on a half cell (``GridLayout.float32_boxes``).
* The ego footprint (1.85 m wide, 4.084 m long, centre 0.5 m ahead of the waypoint) is the set of cells
  whose centres lie inside the rectangle at the origin (``skimage.draw.polygon``, 32 cells), AXIS-ALIGNED
  (``evaluate_single_coll``). It is moved to a waypoint by ``int(cell + waypoint / 0.5)`` (truncation
  toward zero) and clipped to the grid; that lookup is half a cell off the raster's rounding.
* A step collides when any footprint cell is occupied.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

GRID_CELLS = 200
GRID_RES_M = 0.5
GRID_MIN_M = -50.0
CELL0_CENTRE_M = GRID_MIN_M + GRID_RES_M / 2  # -49.75: centre of cell 0 ("bx" in the published code)

EGO_WIDTH_M = 1.85
EGO_LENGTH_M = 4.084
EGO_CENTRE_AHEAD_M = 0.5  # footprint centre ahead of the LiDAR origin, along the forward axis

GROUPS: tuple[str, ...] = ("other", "vehicle", "pedestrian")
GROUP_CODE = {name: i for i, name in enumerate(GROUPS)}


@dataclass(frozen=True)
class GridLayout:
    """How one protocol's code lays out its occupancy grid and looks the ego footprint up in it.

    Attributes:
        name: protocol family ("stp3", "uniad", "odv").
        lookup_col_sign: the footprint column of a LiDAR-frame waypoint is ``sign * x / 0.5``.
        flip_cols: the drawn raster is mirrored left-right before the lookup (column c reads 199 - c).
        source: the peer file and function the layout follows.
        float32_boxes: box corners and their cells are computed in float32 as UniAD's label code does
            (``uniad_box_vertices_rc``); False: in float64 (ST-P3).
    """

    name: str
    lookup_col_sign: float
    flip_cols: bool
    source: str
    float32_boxes: bool = False


STP3_GRID = GridLayout(
    "stp3", -1.0, False, "ST-P3 stp3/metrics.py PlanningMetric.evaluate_coll; NuscenesData._get_poly_region_in_image"
)
UNIAD_GRID = GridLayout(
    "uniad",
    1.0,
    False,
    "UniAD planning_metrics.py PlanningMetric.update/evaluate_coll; occflow_label.py __call__",
    float32_boxes=True,
)
# OpenDriveVLA reads UniAD's own occupancy labels (GPT-Driver's cache of GenerateOccFlowLabels), float32 boxes too
ODV_GRID = GridLayout(
    "odv",
    -1.0,
    True,
    "OpenDriveVLA drivevla/eval_share/evaluation.py planning_evaluation; metric.py evaluate_coll",
    float32_boxes=True,
)

# nuScenes detection class names (mmdet3d style) that some sources use instead of full category names.
_VEHICLE_CLASSES = {"car", "truck", "bus", "trailer", "construction_vehicle", "motorcycle", "bicycle"}


def category_group(category: str) -> str:
    """Metric group of a nuScenes category: "vehicle" (vehicle.*), "pedestrian" (human.pedestrian.*) or "other".

    Detection class names ("car", "pedestrian", ...) are accepted too.
    """
    c = category.strip().lower()
    if c.startswith("vehicle.") or c in _VEHICLE_CLASSES:
        return "vehicle"
    if c.startswith("human.pedestrian") or c == "pedestrian":
        return "pedestrian"
    return "other"


@dataclass(frozen=True)
class AgentBoxes:
    """Agent boxes of many samples and future steps, flattened, in each sample's current LiDAR frame.

    Attributes:
        sample: (M,) int, index of the sample the box belongs to.
        step: (M,) int, future step 0..T-1 (step k is at (k + 1) * 0.5 s).
        xy: (M, 2) box centres, metres, LiDAR frame (x right, y forward).
        length_m: (M,) size along the box heading.
        width_m: (M,) size across the heading.
        yaw_rad: (M,) heading, CCW from LiDAR +x.
        group: (M,) int8 codes into GROUPS (0 other, 1 vehicle, 2 pedestrian).
    """

    sample: np.ndarray
    step: np.ndarray
    xy: np.ndarray
    length_m: np.ndarray
    width_m: np.ndarray
    yaw_rad: np.ndarray
    group: np.ndarray

    def __post_init__(self) -> None:
        m = np.shape(self.sample)[0] if np.ndim(self.sample) == 1 else -1
        if m < 0:
            raise ValueError(f"boxes.sample: got shape {np.shape(self.sample)}, expected (M,)")
        expected = {"step": (m,), "xy": (m, 2), "length_m": (m,), "width_m": (m,), "yaw_rad": (m,), "group": (m,)}
        for name, shape in expected.items():
            got = np.shape(getattr(self, name))
            if got != shape:
                raise ValueError(f"boxes.{name}: got shape {got}, expected {shape}")
        for name in ("xy", "length_m", "width_m", "yaw_rad"):
            if not np.all(np.isfinite(getattr(self, name))):
                raise ValueError(f"boxes.{name}: got NaN or inf, expected finite values")

    def __len__(self) -> int:
        return int(np.shape(self.sample)[0])

    @classmethod
    def empty(cls) -> AgentBoxes:
        z = np.zeros(0)
        return cls(z.astype(np.int64), z.astype(np.int64), np.zeros((0, 2)), z, z, z, z.astype(np.int8))

    @classmethod
    def from_lists(
        cls,
        sample: Sequence[int],
        step: Sequence[int],
        xy: Sequence[Sequence[float]],
        length_m: Sequence[float],
        width_m: Sequence[float],
        yaw_rad: Sequence[float],
        category: Sequence[str],
    ) -> AgentBoxes:
        """Build from per-box lists with category names (mapped by category_group)."""
        return cls(
            np.asarray(sample, dtype=np.int64).reshape(-1),
            np.asarray(step, dtype=np.int64).reshape(-1),
            np.asarray(xy, dtype=np.float64).reshape(-1, 2),
            np.asarray(length_m, dtype=np.float64).reshape(-1),
            np.asarray(width_m, dtype=np.float64).reshape(-1),
            np.asarray(yaw_rad, dtype=np.float64).reshape(-1),
            np.array([GROUP_CODE[category_group(c)] for c in category], dtype=np.int8),
        )

    @classmethod
    def concatenate(cls, parts: Sequence[AgentBoxes]) -> AgentBoxes:
        if not parts:
            return cls.empty()
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in cls.__dataclass_fields__))

    def corners(self) -> np.ndarray:
        """(M, 4, 2) corners in the LiDAR frame."""
        c, s = np.cos(self.yaw_rad), np.sin(self.yaw_rad)
        hl, hw = self.length_m / 2, self.width_m / 2
        u = np.array([1.0, -1.0, -1.0, 1.0])[None] * hl[:, None]  # along the heading
        v = np.array([1.0, 1.0, -1.0, -1.0])[None] * hw[:, None]  # across it
        x = self.xy[:, :1] + c[:, None] * u - s[:, None] * v
        y = self.xy[:, 1:] + s[:, None] * u + c[:, None] * v
        return np.stack([x, y], axis=-1)


def _cells_with_centres_in(lo_m: float, hi_m: float) -> np.ndarray:
    """Grid indices whose cell centres lie in [lo_m, hi_m] (skimage.draw.polygon semantics)."""
    lo = math.ceil((lo_m - CELL0_CENTRE_M) / GRID_RES_M - 1e-9)
    hi = math.floor((hi_m - CELL0_CENTRE_M) / GRID_RES_M + 1e-9)
    return np.arange(lo, hi + 1)


def ego_footprint_cells() -> tuple[np.ndarray, np.ndarray]:
    """(K,) rows and cols of the axis-aligned ego footprint for a waypoint at the LiDAR origin (K = 32)."""
    rows = _cells_with_centres_in(-EGO_LENGTH_M / 2 + EGO_CENTRE_AHEAD_M, EGO_LENGTH_M / 2 + EGO_CENTRE_AHEAD_M)
    cols = _cells_with_centres_in(-EGO_WIDTH_M / 2, EGO_WIDTH_M / 2)
    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    return rr.reshape(-1), cc.reshape(-1)


_FOOT_ROWS, _FOOT_COLS = ego_footprint_cells()


def footprint_cells(traj_xy: np.ndarray, layout: GridLayout = STP3_GRID) -> tuple[np.ndarray, np.ndarray]:
    """Raster rows and cols of the ego footprint at each LiDAR-frame waypoint, as ``layout``'s code looks it up.

    Args:
        traj_xy: (..., 2) waypoints, LiDAR frame (x right, y forward).
        layout: the protocol's grid layout.

    Returns:
        rows, cols: (..., K) int32 indices into the drawn raster, clipped to the grid as in the peers' code.
    """
    xy = np.asarray(traj_xy, dtype=np.float64)
    forward = xy[..., 1:2] / GRID_RES_M
    across = layout.lookup_col_sign * xy[..., 0:1] / GRID_RES_M
    rows = np.clip((_FOOT_ROWS + forward).astype(np.int32), 0, GRID_CELLS - 1)
    cols = np.clip((_FOOT_COLS + across).astype(np.int32), 0, GRID_CELLS - 1)
    if layout.flip_cols:  # reading column c of the mirrored raster reads column 199 - c of the drawn one
        cols = GRID_CELLS - 1 - cols
    return rows, cols


def box_vertices_rc(boxes: AgentBoxes, layout: GridLayout = STP3_GRID) -> np.ndarray:
    """(M, 4, 2) int32 polygon vertices as cv2 points (col, row) of raster-frame boxes, rounded like the peers.

    ST-P3 (``NuscenesData._get_poly_region_in_image``) computes in float64; layouts with ``float32_boxes``
    follow UniAD's float32 arithmetic (``uniad_box_vertices_rc``).
    """
    if layout.float32_boxes:
        return uniad_box_vertices_rc(boxes)
    corners = boxes.corners()
    cols = np.round((corners[..., 0] - GRID_MIN_M) / GRID_RES_M)
    rows = np.round((corners[..., 1] - GRID_MIN_M) / GRID_RES_M)
    return np.stack([cols, rows], axis=-1).astype(np.int32)


def uniad_yaw_to_heading(theta: np.ndarray) -> np.ndarray:
    """UniAD's float32 box yaw (mmdet3d v0.17.1 LiDAR convention, see ``uniad_box_vertices_rc``) -> the heading
    CCW from +x that AgentBoxes holds. ``uniad_box_vertices_rc`` turns it back into the same float32 yaw."""
    return -np.asarray(theta, dtype=np.float32).astype(np.float64) - math.pi / 2


def uniad_box_vertices_rc(boxes: AgentBoxes) -> np.ndarray:
    """(M, 4, 2) int32 cv2 vertices (col, row) of raster-frame boxes with UniAD's float32 arithmetic.

    UniAD (commit cdc9f63) writes each box's yaw as ``-yaw - pi/2`` (tools/data_converter/uniad_nuscenes_converter.py
    ``_fill_trainval_infos``) and holds the boxes as mmdet3d v0.17.1 ``LiDARInstance3DBoxes``: a float32 tensor,
    width along the box's local x, length along its local y. ``occflow_label.py GenerateOccFlowLabels.__call__``
    takes ``corners[:, [0, 3, 7, 4], :2]`` (lidar_box3d.py ``corners``: the offsets (+-w/2, +-l/2) turned by
    structures/utils.py ``rotation_3d_in_axis``, x' = x cos + y sin, y' = -x sin + y cos, then plus the centre)
    and converts them to cells as ``np.round((corner - bev_start + res / 2) / res)`` with float32 arrays
    (bev_start -49.75, res 0.5). Every step below is one float32 operation in that order (numpy float32 products
    and sums round like torch's float32 einsum on CPU); sin and cos are torch's float32 ones, as in
    ``rotation_3d_in_axis``. A corner on a half cell (v + 50 = (n + 0.5) * 0.5) thus rounds the way UniAD's does.
    """
    import torch

    f32 = np.float32
    theta = (-np.asarray(boxes.yaw_rad, dtype=np.float64) - math.pi / 2).astype(f32)
    t = torch.from_numpy(theta)
    cos, sin = torch.cos(t).numpy()[:, None], torch.sin(t).numpy()[:, None]
    ox = np.asarray(boxes.width_m, dtype=f32)[:, None] * np.array([-0.5, -0.5, 0.5, 0.5], dtype=f32)
    oy = np.asarray(boxes.length_m, dtype=f32)[:, None] * np.array([-0.5, 0.5, 0.5, -0.5], dtype=f32)
    centre = np.asarray(boxes.xy, dtype=f32)
    x = (ox * cos + oy * sin) + centre[:, :1]
    y = (ox * -sin + oy * cos) + centre[:, 1:]
    start, res = f32(CELL0_CENTRE_M), f32(GRID_RES_M)
    cols = np.round((x - start + res / f32(2.0)) / res)
    rows = np.round((y - start + res / f32(2.0)) / res)
    return np.stack([cols, rows], axis=-1).astype(np.int32)


def rasterise(boxes: AgentBoxes, mask: np.ndarray | None = None, layout: GridLayout = STP3_GRID) -> np.ndarray:
    """(200, 200) uint8 occupancy of the selected raster-frame boxes as the protocol reads it (mirrored for ODV)."""
    grid = np.zeros((GRID_CELLS, GRID_CELLS), dtype=np.uint8)
    pts = box_vertices_rc(boxes, layout)
    for i in np.flatnonzero(np.ones(len(boxes), bool) if mask is None else mask):
        cv2.fillPoly(grid, [pts[i]], 1)
    return grid[:, ::-1].copy() if layout.flip_cols else grid


def warp_raster(grid: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """A (H, W) raster resampled through a (2, 3) normalised affine with nearest neighbours, zeros outside.

    Follows ST-P3 stp3/utils/geometry.py ``warp_features`` (torch ``affine_grid`` and ``grid_sample`` with
    ``align_corners=False``, float32), which ST-P3's trainer applies to bring each future frame's label raster
    into the present frame (``cumulative_warp_features_reverse``).
    """
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.ascontiguousarray(grid, dtype=np.float32))[None, None]
    t = torch.from_numpy(np.asarray(theta, dtype=np.float32).reshape(1, 2, 3))
    sampling = F.affine_grid(t, size=list(x.shape), align_corners=False)
    out = F.grid_sample(x, sampling, mode="nearest", padding_mode="zeros", align_corners=False)
    return out[0, 0].numpy().astype(np.uint8)


def occupancy_collisions(
    trajs: Sequence[np.ndarray],
    boxes: AgentBoxes,
    groups: Sequence[str] | None = None,
    layout: GridLayout = STP3_GRID,
    warps: np.ndarray | None = None,
) -> np.ndarray:
    """Per-step footprint collisions of several trajectory sets against the per-step occupancy of the boxes.

    Only boxes whose rasterised bounding rectangle can reach a queried footprint are drawn, which keeps
    the cost proportional to the agents near the ego, not to the whole grid.

    Args:
        trajs: Q arrays (N, T, 2) of waypoints in the LiDAR frame (e.g. prediction and ground truth).
        boxes: agent boxes in ``layout``'s raster frame; ``boxes.sample`` indexes N, ``boxes.step`` T.
        groups: group names from GROUPS, one occupancy per group; None draws every box into one.
        layout: the protocol's grid layout.
        warps: (N, T, 2, 3) normalised affines (``warp_raster``) that take the raster of step t of sample n,
            drawn in that step's own frame, into the frame the trajectories are in (ST-P3's raster warp);
            NaN rows or None: the boxes are already in the trajectories' frame.

    Returns:
        (Q, G, N, T) bool (G = 1 when groups is None): footprint of trajs[q] at step t of sample n
        touches a box of groups[g].
    """
    if not trajs:
        raise ValueError("trajs: got no trajectory sets, expected at least one (N, T, 2) array")
    shape = np.shape(trajs[0])
    if len(shape) != 3 or shape[2] != 2:
        raise ValueError(f"trajs[0]: got shape {shape}, expected (N, T, 2)")
    for q, t in enumerate(trajs):
        if np.shape(t) != shape:
            raise ValueError(f"trajs[{q}]: got shape {np.shape(t)}, expected {shape} like trajs[0]")
        if not np.all(np.isfinite(t)):
            raise ValueError(f"trajs[{q}]: got NaN or inf, expected finite waypoints")
    unknown = [g for g in groups or () if g not in GROUP_CODE]
    if unknown:
        raise ValueError(f"groups: got {unknown}, expected names from {list(GROUPS)}")
    n, t_steps, _ = shape
    out = np.zeros((len(trajs), 1 if groups is None else len(groups), n, t_steps), dtype=bool)
    if len(boxes) == 0 or n == 0:
        return out
    if boxes.sample.min() < 0 or boxes.sample.max() >= n or boxes.step.min() < 0 or boxes.step.max() >= t_steps:
        raise ValueError(f"boxes.sample/step: got indices outside the {n} samples x {t_steps} steps")

    cells = [footprint_cells(t, layout) for t in trajs]  # Q x ((N, T, K), (N, T, K))
    rows = np.stack([c[0] for c in cells])  # (Q, N, T, K)
    cols = np.stack([c[1] for c in cells])
    pts = box_vertices_rc(boxes, layout)  # (M, 4, 2) (col, row)
    s, k = boxes.sample, boxes.step
    fr_lo, fr_hi = rows.min(-1)[:, s, k], rows.max(-1)[:, s, k]  # (Q, M)
    fc_lo, fc_hi = cols.min(-1)[:, s, k], cols.max(-1)[:, s, k]
    near = (
        (fr_lo <= pts[..., 1].max(-1))
        & (fr_hi >= pts[..., 1].min(-1))
        & (fc_lo <= pts[..., 0].max(-1))
        & (fc_hi >= pts[..., 0].min(-1))
    ).any(0)
    if warps is not None:
        if np.shape(warps) != (n, t_steps, 2, 3):
            raise ValueError(f"warps: got shape {np.shape(warps)}, expected ({n}, {t_steps}, 2, 3)")
        warped = np.isfinite(warps).all(axis=(2, 3))  # (N, T)
        near = near | warped[s, k]  # a box drawn in another frame can reach the footprint once warped
    grid = np.zeros((GRID_CELLS, GRID_CELLS), dtype=np.uint8)
    selections = [near] if groups is None else [near & (boxes.group == GROUP_CODE[g]) for g in groups]
    for g, selected in enumerate(selections):
        idx = np.flatnonzero(selected)
        if idx.size == 0:
            continue
        key = s[idx] * t_steps + k[idx]
        order = np.argsort(key, kind="stable")
        idx, key = idx[order], key[order]
        starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
        ends = np.r_[starts[1:], idx.size]
        for a, b in zip(starts, ends):
            grid.fill(0)
            for m in idx[a:b]:
                cv2.fillPoly(grid, [pts[m]], 1)
            si, ki = s[idx[a]], k[idx[a]]
            occ = warp_raster(grid, warps[si, ki]) if warps is not None and warped[si, ki] else grid
            out[:, g, si, ki] = occ[rows[:, si, ki], cols[:, si, ki]].any(-1)
    return out
