"""Open-loop L2 accumulated over validation batches (canonical ego frame, masked, mean over steps up to N s)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from drive_vla.types import STEP_DT_S, Plan

HORIZONS_S: tuple[int, ...] = (1, 2, 3)


class OpenLoopL2:
    """Accumulates per-step L2 between planned and ground-truth waypoints.

    value@Ns is the mean L2 over the valid ground-truth steps 0.5 s..N s of every sample (ST-P3-style
    averaging, with masked steps left out instead of dropping the sample); ``avg`` is the mean of the
    1 s, 2 s and 3 s values. Both trajectories are in the sample's ego frame; L2 is invariant to the
    rigid change to the LiDAR frame, so the value matches the LiDAR-frame metric for the same points.
    """

    def __init__(self) -> None:
        self.sum_m = np.zeros(len(HORIZONS_S))
        self.count = np.zeros(len(HORIZONS_S))

    def update(self, plans: Sequence[Plan], gt_xy: np.ndarray, gt_mask: np.ndarray) -> None:
        """plans: B Plans; gt_xy: (B, T, 2) metres; gt_mask: (B, T) bool."""
        gt_xy = np.asarray(gt_xy, dtype=np.float64)
        gt_mask = np.asarray(gt_mask, dtype=bool)
        if len(plans) != len(gt_xy):
            raise ValueError(f"plans: got {len(plans)}, expected {len(gt_xy)} (one per ground-truth trajectory)")
        t = gt_xy.shape[1]
        pred = np.stack([np.asarray(p.trajectory.xy, dtype=np.float64)[:t] for p in plans])  # (B, T, 2)
        if pred.shape != gt_xy.shape:
            raise ValueError(f"planned waypoints: got shape {pred.shape}, expected {gt_xy.shape}")
        l2 = np.linalg.norm(pred - gt_xy, axis=-1)  # (B, T)
        for i, h in enumerate(HORIZONS_S):
            last = int(round(h / STEP_DT_S))
            m = gt_mask[:, :last]
            self.sum_m[i] += float((l2[:, :last] * m).sum())
            self.count[i] += float(m.sum())

    def compute(self) -> dict[str, float]:
        """{"l2_1s_m", "l2_2s_m", "l2_3s_m", "l2_avg_m"}; NaN where no valid step was seen."""
        with np.errstate(invalid="ignore", divide="ignore"):
            vals = self.sum_m / self.count
        out = {f"l2_{h}s_m": float(v) for h, v in zip(HORIZONS_S, vals)}
        out["l2_avg_m"] = float(np.mean(vals))
        return out

    def reset(self) -> None:
        self.sum_m[:] = 0.0
        self.count[:] = 0.0
