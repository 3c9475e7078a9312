"""Auxiliary bird's-eye-view occupancy: a training-only task that makes the planner's input carry the agents.

The planning losses alone give a vision tokenizer trained from scratch a weak signal about where other
vehicles are (a car 40 m ahead is a few pixels, and it changes the plan only when it is close). TransFuser
and its successors add perception losses for this reason. Here a small head reads the hidden state the
planner head reads (the last prompt token) and predicts a coarse occupancy grid of the annotated agents
in the ego frame now and at later keyframes (their future boxes, so motion is learned too). The grid is
drawn from ``Targets.boxes`` / ``Targets.future_boxes``; nothing here runs at inference.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from drive_vla.model.head_configs import BEVAuxConfig
from drive_vla.types import Boxes, Sample

# points of a unit box footprint (corners, edge midpoints, centre, quarter points) in box coordinates
_U = np.array([-0.5, -0.25, 0.0, 0.25, 0.5])
_FOOTPRINT = np.stack(np.meshgrid(_U, _U, indexing="ij"), axis=-1).reshape(-1, 2)  # (25, 2)


def rasterize(boxes: Boxes, cfg: BEVAuxConfig) -> np.ndarray:
    """(rows, cols) float32 grid, 1 where a box footprint covers the cell; row 0 is the back, column 0 the right."""
    _, nx, ny = cfg.shape
    grid = np.zeros((nx, ny), dtype=np.float32)
    if len(boxes.xyz) == 0:
        return grid
    c, s = np.cos(boxes.yaw_rad), np.sin(boxes.yaw_rad)
    lx = _FOOTPRINT[None, :, 0] * boxes.lwh[:, None, 0]  # (N, 25) along the box's heading
    ly = _FOOTPRINT[None, :, 1] * boxes.lwh[:, None, 1]
    x = boxes.xyz[:, None, 0] + c[:, None] * lx - s[:, None] * ly
    y = boxes.xyz[:, None, 1] + s[:, None] * lx + c[:, None] * ly
    r = np.floor((x - cfg.x_range_m[0]) / cfg.cell_m).astype(np.int64).ravel()
    k = np.floor((y - cfg.y_range_m[0]) / cfg.cell_m).astype(np.int64).ravel()
    ok = (r >= 0) & (r < nx) & (k >= 0) & (k < ny)
    grid[r[ok], k[ok]] = 1.0
    return grid


def occupancy_targets(samples: Sequence[Sample], cfg: BEVAuxConfig) -> tuple[np.ndarray, np.ndarray]:
    """(B, steps, rows, cols) grids and a (B, steps) mask of the steps a sample has boxes for.

    Step 0 reads ``targets.boxes`` (absent: masked out); step k > 0 reads ``targets.future_boxes[k - 1]``
    (masked out past the scene's end, where the future trajectory is not valid either).
    """
    t, nx, ny = cfg.shape
    grids = np.zeros((len(samples), t, nx, ny), dtype=np.float32)
    mask = np.zeros((len(samples), t), dtype=bool)
    for b, sample in enumerate(samples):
        tg = sample.targets
        for j, step in enumerate(cfg.steps):
            if step == 0:
                boxes = tg.boxes
            elif step <= len(tg.future_boxes) and bool(tg.trajectory.mask[step - 1]):
                boxes = tg.future_boxes[step - 1]
            else:
                boxes = None
            if boxes is not None:
                grids[b, j], mask[b, j] = rasterize(boxes, cfg), True
    return grids, mask


class BEVAuxHead(nn.Module):
    """Hidden state (B, H) -> occupancy logits (B, steps, rows, cols)."""

    def __init__(self, cfg: BEVAuxConfig, hidden_size: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.net = nn.Sequential(
            nn.LayerNorm(hidden_size),
            nn.Linear(hidden_size, cfg.hidden),
            nn.GELU(),
            nn.Linear(cfg.hidden, int(np.prod(cfg.shape))),
        )

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h).view(h.shape[0], *self.cfg.shape)

    def loss(self, h: torch.Tensor, samples: Sequence[Sample]) -> torch.Tensor | None:
        """Binary cross-entropy over the cells of the steps that have boxes; None when no sample has any."""
        grids, mask = occupancy_targets(samples, self.cfg)
        if not mask.any():
            return None
        logits = self(h).float()
        target = torch.from_numpy(grids).to(logits.device)
        keep = torch.from_numpy(mask).to(logits.device)
        return nn.functional.binary_cross_entropy_with_logits(logits[keep], target[keep])
