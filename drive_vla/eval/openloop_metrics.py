"""Open-loop planning metrics (L2, collision) under the ST-P3/VAD and UniAD protocols, as pure functions.

Inputs are arrays in the current LiDAR frame (x right, y forward, metres): predicted and ground-truth
waypoints (N, 6, 2) at 2 Hz, the ground-truth validity mask (N, 6) and the agent boxes of every future
step (AgentBoxes). Conversion from drive-vla's ego-frame types happens once, in eval/openloop.py.

Protocols (numbers at 1 s, 2 s, 3 s; "avg" is the mean of those three):

* ``stp3`` (ST-P3, VAD, OpenDriveVLA's "ST-P3 metrics"): value@Ns = mean over steps 1..2N, over the
  samples with a complete 6-step future; obstacles are vehicles and pedestrians.
* ``uniad`` (UniAD, "per-step"): value@Ns = value at step 2N alone; vehicles only; every sample is in
  the denominator and missing future steps contribute 0 (UniAD multiplies by the mask and divides by
  the sample count), so a split with short futures reads lower than a per-valid-step mean.

Collision everywhere: the axis-aligned ego footprint (occupancy.py) at the waypoint touches an occupied
cell at that step, and the step is counted only when the ground-truth ego at that step does not collide
(ST-P3's ``obj_box_col``). Collision rates are in percent.

``box_overlap`` is a separate diagnostic, not a published protocol: rotated ego box vs agent boxes
(shapely), ST-P3 averaging, vehicles and pedestrians, same ground-truth exclusion.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from drive_vla.eval.box_collision import box_collisions, path_headings
from drive_vla.eval.occupancy import AgentBoxes, occupancy_collisions

HORIZONS_S: tuple[int, ...] = (1, 2, 3)
STEPS_PER_S = 2
NUM_STEPS = 6


@dataclass(frozen=True)
class Protocol:
    """How per-step L2 and collision become the published numbers.

    Attributes:
        name: key in reports ("stp3", "uniad", "box_overlap").
        label: short human label used in tables.
        aggregation: "mean_to_horizon" (mean over steps 1..2N) or "at_horizon" (step 2N only).
        groups: agent groups that count as obstacles.
        full_future_only: keep only samples whose 6 future steps are all valid.
        published: False for diagnostics that no paper reports.
    """

    name: str
    label: str
    aggregation: str
    groups: tuple[str, ...]
    full_future_only: bool
    published: bool = True

    def describe(self) -> str:
        how = "mean over steps 0.5 s..N s" if self.aggregation == "mean_to_horizon" else "value at step N s"
        futures = (
            "samples with the full 6-step future" if self.full_future_only else "all samples, missing steps masked"
        )
        tail = "" if self.published else "; NOT a published protocol"
        return f"{self.label}: {how}; obstacles {'+'.join(self.groups)}; {futures}{tail}"


STP3 = Protocol("stp3", "ST-P3/VAD avg", "mean_to_horizon", ("vehicle", "pedestrian"), True)
UNIAD = Protocol("uniad", "UniAD per-step", "at_horizon", ("vehicle",), False)
BOX_OVERLAP = Protocol(
    "box_overlap", "box overlap (rotated ego)", "mean_to_horizon", ("vehicle", "pedestrian"), True, published=False
)
PROTOCOLS: dict[str, Protocol] = {p.name: p for p in (STP3, UNIAD)}


def resolve_protocols(protocol: str | Sequence[str]) -> list[Protocol]:
    """ "all" | "stp3" | "uniad" | a list of names -> Protocol objects."""
    names = list(PROTOCOLS) if protocol == "all" else [protocol] if isinstance(protocol, str) else list(protocol)
    bad = [p for p in names if p not in PROTOCOLS]
    if bad or not names:
        raise ValueError(f"protocol: got {protocol!r}, expected 'all' or names from {list(PROTOCOLS)}")
    return [PROTOCOLS[p] for p in names]


def l2_per_step(pred_xy: np.ndarray, gt_xy: np.ndarray) -> np.ndarray:
    """(N, T) Euclidean distance between predicted and ground-truth waypoints."""
    return np.linalg.norm(np.asarray(pred_xy, np.float64) - np.asarray(gt_xy, np.float64), axis=-1)


def aggregate(l2: np.ndarray, collision: np.ndarray, gt_mask: np.ndarray, protocol: Protocol) -> dict[str, Any]:
    """Turn per-step L2 (N, T) and counted collisions (N, T) into the protocol's numbers.

    ``collision`` must already exclude steps where the ground truth collides. Returns
    ``{"l2_m": {"1s", "2s", "3s", "avg"}, "collision_pct": {...}, "num_samples": int, "protocol": str}``;
    values are None when the protocol keeps no sample.
    """
    l2 = np.asarray(l2, dtype=np.float64)
    coll = np.asarray(collision, dtype=np.float64)
    mask = np.asarray(gt_mask, dtype=bool)
    if l2.ndim != 2 or l2.shape[1] != NUM_STEPS or coll.shape != l2.shape or mask.shape != l2.shape:
        raise ValueError(
            f"l2/collision/gt_mask: got shapes {l2.shape}, {coll.shape}, {mask.shape}, expected (N, {NUM_STEPS}) each"
        )
    keep = mask.all(axis=1) if protocol.full_future_only else np.ones(len(l2), dtype=bool)
    n = int(keep.sum())
    out: dict[str, Any] = {"protocol": protocol.describe(), "num_samples": n, "l2_m": {}, "collision_pct": {}}
    if protocol.full_future_only:
        out["num_samples_without_full_future"] = int(len(l2) - n)
    for h in HORIZONS_S:
        last = h * STEPS_PER_S
        if n == 0:
            l2_h = coll_h = None
        elif protocol.aggregation == "mean_to_horizon":
            l2_h = float(l2[keep, :last].mean())
            coll_h = 100.0 * float(coll[keep, :last].mean())
        elif protocol.aggregation == "at_horizon":
            m = mask[keep, last - 1]
            l2_h = float((l2[keep, last - 1] * m).sum() / n)
            coll_h = 100.0 * float((coll[keep, last - 1] * m).sum() / n)
        else:
            raise ValueError(
                f"protocol.aggregation: got {protocol.aggregation!r}, expected mean_to_horizon or at_horizon"
            )
        out["l2_m"][f"{h}s"] = l2_h
        out["collision_pct"][f"{h}s"] = coll_h
    for key in ("l2_m", "collision_pct"):
        vals = [out[key][f"{h}s"] for h in HORIZONS_S]
        out[key]["avg"] = None if n == 0 else float(np.mean(vals))
    if protocol.aggregation == "at_horizon":
        out["valid_samples_at_step"] = {f"{h}s": int(mask[keep, h * STEPS_PER_S - 1].sum()) for h in HORIZONS_S}
    return out


def _check_inputs(pred_xy: np.ndarray, gt_xy: np.ndarray, gt_mask: np.ndarray) -> tuple[np.ndarray, ...]:
    pred = np.asarray(pred_xy, dtype=np.float64)
    gt = np.asarray(gt_xy, dtype=np.float64)
    mask = np.asarray(gt_mask)
    if pred.ndim != 3 or pred.shape[1:] != (NUM_STEPS, 2):
        raise ValueError(f"pred_xy: got shape {pred.shape}, expected (N, {NUM_STEPS}, 2)")
    if gt.shape != pred.shape:
        raise ValueError(f"gt_xy: got shape {gt.shape}, expected {pred.shape} like pred_xy")
    if mask.shape != pred.shape[:2] or mask.dtype != np.bool_:
        raise ValueError(f"gt_mask: got {mask.dtype} shape {mask.shape}, expected bool {pred.shape[:2]}")
    if not np.all(np.isfinite(pred)):
        raise ValueError("pred_xy: got NaN or inf, expected finite waypoints (drop failed samples first)")
    # Masked ground-truth steps may hold anything; they are never scored.
    gt = np.where(mask[..., None] & np.isfinite(gt), gt, 0.0)
    return pred, gt, mask


def openloop_metrics(
    pred_xy: np.ndarray,
    gt_xy: np.ndarray,
    gt_mask: np.ndarray,
    boxes: AgentBoxes,
    protocols: str | Sequence[str] = "all",
    pred_yaw_rad: np.ndarray | None = None,
    gt_yaw_rad: np.ndarray | None = None,
    box_overlap: bool = True,
) -> dict[str, Any]:
    """L2 and collision of predicted plans under the published protocols (and the box-overlap diagnostic).

    Args:
        pred_xy: (N, 6, 2) predicted waypoints, LiDAR frame.
        gt_xy: (N, 6, 2) ground-truth waypoints, LiDAR frame (values at masked steps are ignored).
        gt_mask: (N, 6) bool validity of the ground truth.
        boxes: agent boxes per sample and future step, LiDAR frame.
        protocols: "all", "stp3", "uniad" or a list of names.
        pred_yaw_rad, gt_yaw_rad: (N, 6) headings CCW from LiDAR +x for the box-overlap diagnostic;
            derived from the path when None.
        box_overlap: also compute the (unpublished) rotated-box diagnostic.

    Returns:
        ``{protocol name: aggregate(...) + {"gt_collision_steps_excluded": int}}``, plus "box_overlap".
    """
    pred, gt, mask = _check_inputs(pred_xy, gt_xy, gt_mask)
    chosen = resolve_protocols(protocols)
    if len(boxes) and (boxes.sample.max() >= len(pred) or boxes.sample.min() < 0):
        raise ValueError(f"boxes.sample: got indices up to {int(boxes.sample.max())}, expected < {len(pred)}")
    groups = sorted({g for p in chosen for g in p.groups})
    l2 = l2_per_step(pred, gt)
    hits = occupancy_collisions([pred, gt], boxes, groups)  # (2, G, N, T)
    out: dict[str, Any] = {}
    for p in chosen:
        g_idx = [groups.index(g) for g in p.groups]
        pred_hit, gt_hit = hits[0, g_idx].any(0), hits[1, g_idx].any(0) & mask
        counted = pred_hit & ~gt_hit
        out[p.name] = aggregate(l2, counted, mask, p)
        keep = mask.all(1) if p.full_future_only else np.ones(len(mask), bool)
        out[p.name]["gt_collision_steps_excluded"] = int((gt_hit & keep[:, None]).sum())
    if box_overlap:
        p = BOX_OVERLAP
        pyaw = path_headings(pred) if pred_yaw_rad is None else np.asarray(pred_yaw_rad, np.float64)
        gyaw = path_headings(gt) if gt_yaw_rad is None else np.where(mask, np.nan_to_num(gt_yaw_rad), 0.0)
        pred_hit = box_collisions(pred, pyaw, boxes, p.groups)
        gt_hit = box_collisions(gt, gyaw, boxes, p.groups) & mask
        out[p.name] = aggregate(l2, pred_hit & ~gt_hit, mask, p)
        out[p.name]["gt_collision_steps_excluded"] = int((gt_hit & mask.all(1)[:, None]).sum())
    return out
