"""Open-loop planning metrics (L2, collision) under the published protocols, as pure functions.

Inputs are arrays in the current LiDAR frame (x right, y forward, metres): predicted and ground-truth
waypoints (N, 6, 2) at 2 Hz and the ground-truth validity mask (N, 6); the agents come either as each
protocol family's raster-frame boxes (openloop_protocols.SampleAgents, what the runner builds from the
dataset) or as group-coded LiDAR-frame boxes (generated cases). Conversion from drive-vla's ego-frame
types happens once, in eval/openloop.py. Which protocol does what is in openloop_protocols.py.

Collision everywhere: the axis-aligned ego footprint (occupancy.py) at the waypoint touches an occupied
cell at that step, and the step is counted only when the ground-truth footprint at that step does not
(``obj_box_col`` of every peer's ``PlanningMetric.evaluate_coll``). Collision rates are in percent.
L2 is the Euclidean distance per step; protocols over all samples zero it at masked steps (UniAD
``planning_metrics.py`` ``compute_L2`` multiplies by the mask).

``box_overlap`` is a separate diagnostic, not a published protocol: rotated ego box vs agent boxes
(shapely), mean over steps, samples with the full future, vehicles and pedestrians.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from drive_vla.eval.box_collision import box_collisions, path_headings
from drive_vla.eval.occupancy import AgentBoxes, occupancy_collisions
from drive_vla.eval.openloop_protocols import (
    BOX_OVERLAP,
    ODV_STP3,
    ODV_UNIAD,
    PROTOCOLS,
    STP3,
    UNIAD,
    Protocol,
    raster_boxes_from_lidar,
    resolve_protocols,
)
from drive_vla.geometry import NUSCENES_LIDAR2EGO

__all__ = [
    "BOX_OVERLAP", "HORIZONS_S", "NUM_STEPS", "ODV_STP3", "ODV_UNIAD", "PROTOCOLS", "STP3", "UNIAD", "Protocol",
    "aggregate", "l2_per_step", "openloop_metrics", "resolve_protocols",
]  # fmt: skip

HORIZONS_S: tuple[int, ...] = (1, 2, 3)
STEPS_PER_S = 2
NUM_STEPS = 6


def l2_per_step(pred_xy: np.ndarray, gt_xy: np.ndarray) -> np.ndarray:
    """(N, T) Euclidean distance between predicted and ground-truth waypoints."""
    return np.linalg.norm(np.asarray(pred_xy, np.float64) - np.asarray(gt_xy, np.float64), axis=-1)


def aggregate(
    l2: np.ndarray, collision: np.ndarray, gt_mask: np.ndarray, protocol: Protocol, keep: np.ndarray | None = None
) -> dict[str, Any]:
    """Turn per-step L2 (N, T) and counted collisions (N, T) into the protocol's numbers.

    ``collision`` must already exclude steps where the ground truth collides. ``keep`` (N,) bool is the
    protocol's sample set where it is not "all" (default: samples with the full future). Returns
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
    if protocol.sample_set == "all":
        keep = np.ones(len(l2), dtype=bool)
        l2, coll = l2 * mask, coll * mask  # missing steps add 0 and the denominator is every sample
    else:
        keep = mask.all(axis=1) if keep is None else np.asarray(keep, dtype=bool) & mask.all(axis=1)
    n = int(keep.sum())
    out: dict[str, Any] = {"protocol": protocol.describe(), "num_samples": n, "l2_m": {}, "collision_pct": {}}
    if protocol.sample_set != "all":
        out["num_samples_outside_sample_set"] = int(len(l2) - n)
    for h in HORIZONS_S:
        last = h * STEPS_PER_S
        if n == 0:
            l2_h = coll_h = None
        elif protocol.aggregation == "mean_to_horizon":
            l2_h = float(l2[keep, :last].mean())
            coll_h = 100.0 * float(coll[keep, :last].mean())
        elif protocol.aggregation == "at_horizon":
            l2_h = float(l2[keep, last - 1].mean())
            coll_h = 100.0 * float(coll[keep, last - 1].mean())
        else:
            raise ValueError(
                f"protocol.aggregation: got {protocol.aggregation!r}, expected mean_to_horizon or at_horizon"
            )
        out["l2_m"][f"{h}s"] = l2_h
        out["collision_pct"][f"{h}s"] = coll_h
    for key in ("l2_m", "collision_pct"):
        vals = [out[key][f"{h}s"] for h in HORIZONS_S]
        out[key]["avg"] = None if n == 0 else float(np.mean(vals))
    if protocol.sample_set == "all":
        out["valid_samples_at_step"] = {f"{h}s": int(mask[:, h * STEPS_PER_S - 1].sum()) for h in HORIZONS_S}
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


def _family_boxes(boxes: AgentBoxes | Mapping[str, AgentBoxes], agents: str) -> AgentBoxes:
    if isinstance(boxes, AgentBoxes):
        return raster_boxes_from_lidar(boxes, agents, NUSCENES_LIDAR2EGO)
    if agents not in boxes:
        raise ValueError(f"boxes: got agent sets {sorted(boxes)}, expected one for {agents!r}")
    return boxes[agents]


def openloop_metrics(
    pred_xy: np.ndarray,
    gt_xy: np.ndarray,
    gt_mask: np.ndarray,
    boxes: AgentBoxes | Mapping[str, AgentBoxes],
    protocols: str | Sequence[str] = "all",
    pred_yaw_rad: np.ndarray | None = None,
    gt_yaw_rad: np.ndarray | None = None,
    box_overlap: bool = True,
    stp3_samples: np.ndarray | None = None,
    lidar_boxes: AgentBoxes | None = None,
    stp3_warps: np.ndarray | None = None,
) -> dict[str, Any]:
    """L2 and collision of predicted plans under the published protocols (and the box-overlap diagnostic).

    Args:
        pred_xy: (N, 6, 2) predicted waypoints, LiDAR frame.
        gt_xy: (N, 6, 2) ground-truth waypoints, LiDAR frame (values at masked steps are ignored).
        gt_mask: (N, 6) bool validity of the ground truth.
        boxes: {"stp3": ..., "uniad": ...} raster-frame agents of each family (SampleAgents.boxes_for), or
            group-coded LiDAR-frame boxes, converted by raster_boxes_from_lidar with the nominal mount.
        protocols: "all", "stp3", "uniad", "odv" or a list of names.
        pred_yaw_rad, gt_yaw_rad: (N, 6) headings CCW from LiDAR +x for the box-overlap diagnostic;
            derived from the path when None.
        box_overlap: also compute the (unpublished) rotated-box diagnostic.
        stp3_samples: (N,) bool, ST-P3's sample set (openloop_protocols.stp3_in_sample_set); default:
            the samples with the full future.
        lidar_boxes: group-coded LiDAR-frame boxes for the diagnostic when ``boxes`` is a mapping.
        stp3_warps: (N, 6, 2, 3) ST-P3 raster warps (``SampleAgents.stp3_warps``; NaN: none) for "stp3"
            boxes drawn in their own step's frame.

    Returns:
        ``{protocol name: aggregate(...) + {"gt_collision_steps_excluded": int}}``, plus "box_overlap".
    """
    pred, gt, mask = _check_inputs(pred_xy, gt_xy, gt_mask)
    chosen = resolve_protocols(protocols)
    if stp3_samples is not None and np.shape(stp3_samples) != (len(pred),):
        raise ValueError(f"stp3_samples: got shape {np.shape(stp3_samples)}, expected ({len(pred)},)")
    for box_set in [boxes] if isinstance(boxes, AgentBoxes) else list(boxes.values()):
        if len(box_set) and (box_set.sample.max() >= len(pred) or box_set.sample.min() < 0):
            raise ValueError(f"boxes.sample: got indices up to {int(box_set.sample.max())}, expected < {len(pred)}")
    l2 = l2_per_step(pred, gt)
    out: dict[str, Any] = {}
    for p in chosen:
        warps = stp3_warps if p.agents == "stp3" else None
        hits = occupancy_collisions([pred, gt], _family_boxes(boxes, p.agents), None, p.layout, warps)  # (2, 1, N, T)
        gt_hit = hits[1, 0] & mask
        counted = hits[0, 0] & ~gt_hit
        keep = stp3_samples if p.sample_set == "stp3" else None
        out[p.name] = aggregate(l2, counted, mask, p, keep)
        rows = np.ones(len(mask), bool) if p.sample_set == "all" else mask.all(1)
        if keep is not None:
            rows &= np.asarray(keep, dtype=bool)
        out[p.name]["gt_collision_steps_excluded"] = int((gt_hit & rows[:, None]).sum())
    diag = boxes if isinstance(boxes, AgentBoxes) else lidar_boxes
    if box_overlap and diag is not None:
        p = BOX_OVERLAP
        pyaw = path_headings(pred) if pred_yaw_rad is None else np.asarray(pred_yaw_rad, np.float64)
        gyaw = path_headings(gt) if gt_yaw_rad is None else np.where(mask, np.nan_to_num(gt_yaw_rad), 0.0)
        pred_hit = box_collisions(pred, pyaw, diag, ("vehicle", "pedestrian"))
        gt_hit = box_collisions(gt, gyaw, diag, ("vehicle", "pedestrian")) & mask
        out[p.name] = aggregate(l2, pred_hit & ~gt_hit, mask, p)
        out[p.name]["gt_collision_steps_excluded"] = int((gt_hit & mask.all(1)[:, None]).sum())
    return out
