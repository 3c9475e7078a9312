"""BEV occupancy collision check of the published planning metrics (ST-P3, UniAD, VAD), vectorised.

Everything here is in the nuScenes LiDAR frame of the current sample (x right, y forward, metres).
The grid is 200 x 200 cells of 0.5 m over [-50, 50) m; rows index the forward axis (LiDAR y) and
columns the left axis (-LiDAR x), the layout of the published code, so cell (r, c) has its centre at
forward = -49.75 + 0.5 r, left = -49.75 + 0.5 c.

Conventions reproduced from the published code:

* Agent boxes are rasterised per future step with ``cv2.fillPoly`` after rounding each corner to
  ``round((v + 50) / 0.5)`` (FIERY / ST-P3 ``_get_poly_region_in_image``), one polygon per call
  (``fillPoly`` with several polygons XORs overlaps).
* The ego footprint (1.85 m wide, 4.084 m long, centre 0.5 m ahead of the LiDAR origin) is the set of
  cells whose centres lie inside the rectangle at the origin (32 cells), AXIS-ALIGNED: it is not
  rotated with the planned heading, exactly as in ST-P3's ``evaluate_single_coll``. It is translated
  to a waypoint by ``int(cell + waypoint / 0.5)`` and clipped to the grid.
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


def footprint_cells(traj_xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Grid rows and cols of the ego footprint at each waypoint.

    Args:
        traj_xy: (..., 2) waypoints, LiDAR frame.

    Returns:
        rows, cols: (..., K) int32, clipped to the grid as in the published code.
    """
    forward = np.asarray(traj_xy, dtype=np.float64)[..., 1:2] / GRID_RES_M
    left = -np.asarray(traj_xy, dtype=np.float64)[..., 0:1] / GRID_RES_M
    rows = np.clip((_FOOT_ROWS + forward).astype(np.int32), 0, GRID_CELLS - 1)
    cols = np.clip((_FOOT_COLS + left).astype(np.int32), 0, GRID_CELLS - 1)
    return rows, cols


def box_vertices_rc(boxes: AgentBoxes) -> np.ndarray:
    """(M, 4, 2) int32 polygon vertices as cv2 points (col, row), rounded like the published rasteriser."""
    corners = boxes.corners()
    forward, left = corners[..., 1], -corners[..., 0]
    rows = np.round((forward - GRID_MIN_M) / GRID_RES_M)
    cols = np.round((left - GRID_MIN_M) / GRID_RES_M)
    return np.stack([cols, rows], axis=-1).astype(np.int32)


def rasterise(boxes: AgentBoxes, mask: np.ndarray | None = None) -> np.ndarray:
    """(200, 200) uint8 occupancy of the selected boxes (all boxes drawn into one grid; for plots and checks)."""
    grid = np.zeros((GRID_CELLS, GRID_CELLS), dtype=np.uint8)
    pts = box_vertices_rc(boxes)
    for i in np.flatnonzero(np.ones(len(boxes), bool) if mask is None else mask):
        cv2.fillPoly(grid, [pts[i]], 1)
    return grid


def occupancy_collisions(
    trajs: Sequence[np.ndarray], boxes: AgentBoxes, groups: Sequence[str] = ("vehicle", "pedestrian")
) -> np.ndarray:
    """Per-step footprint collisions of several trajectory sets against the per-step occupancy of each group.

    Only boxes whose rasterised bounding rectangle can reach a queried footprint are drawn, which keeps
    the cost proportional to the agents near the ego, not to the whole grid.

    Args:
        trajs: Q arrays (N, T, 2) of waypoints in the LiDAR frame (e.g. prediction and ground truth).
        boxes: agent boxes; ``boxes.sample`` indexes N and ``boxes.step`` indexes T.
        groups: group names from GROUPS; one occupancy per group.

    Returns:
        (Q, G, N, T) bool: footprint of trajs[q] at step t of sample n touches a box of groups[g].
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
    unknown = [g for g in groups if g not in GROUP_CODE]
    if unknown:
        raise ValueError(f"groups: got {unknown}, expected names from {list(GROUPS)}")
    n, t_steps, _ = shape
    out = np.zeros((len(trajs), len(groups), n, t_steps), dtype=bool)
    if len(boxes) == 0 or n == 0:
        return out
    if boxes.sample.min() < 0 or boxes.sample.max() >= n or boxes.step.min() < 0 or boxes.step.max() >= t_steps:
        raise ValueError(f"boxes.sample/step: got indices outside the {n} samples x {t_steps} steps")

    cells = [footprint_cells(t) for t in trajs]  # Q x ((N, T, K), (N, T, K))
    rows = np.stack([c[0] for c in cells])  # (Q, N, T, K)
    cols = np.stack([c[1] for c in cells])
    pts = box_vertices_rc(boxes)  # (M, 4, 2) (col, row)
    s, k = boxes.sample, boxes.step
    fr_lo, fr_hi = rows.min(-1)[:, s, k], rows.max(-1)[:, s, k]  # (Q, M)
    fc_lo, fc_hi = cols.min(-1)[:, s, k], cols.max(-1)[:, s, k]
    near = (
        (fr_lo <= pts[..., 1].max(-1))
        & (fr_hi >= pts[..., 1].min(-1))
        & (fc_lo <= pts[..., 0].max(-1))
        & (fc_hi >= pts[..., 0].min(-1))
    ).any(0)
    grid = np.zeros((GRID_CELLS, GRID_CELLS), dtype=np.uint8)
    for g, name in enumerate(groups):
        idx = np.flatnonzero(near & (boxes.group == GROUP_CODE[name]))
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
            out[:, g, si, ki] = grid[rows[:, si, ki], cols[:, si, ki]].any(-1)
    return out
