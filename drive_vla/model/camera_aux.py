"""Auxiliary camera-space perception: a training-only task on the vision backbone's feature map.

A vision tokenizer trained from scratch on a few thousand frames learns little about other vehicles from
the planning losses alone: their gradient reaches the backbone through the resampler, the LM and the
planner head, and only in the few frames where a car changes the plan. TransFuser and its successors add
dense perception losses for that reason. Here a small convolution reads the backbone's feature map of
each camera and predicts, per feature cell, whether an annotated agent's box covers it and how far the
nearest such box is (log depth). The targets are the sample's 3D boxes projected through its own camera
calibration; nothing here runs at inference.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from drive_vla.geometry import box_corners, invert_transform, transform_points
from drive_vla.model.head_configs import CameraAuxConfig
from drive_vla.types import Boxes, Sample

MIN_DEPTH_M = 0.5  # corners nearer than this (or behind the camera) are projected at this depth


def camera_targets(
    boxes: Boxes | None,
    intrinsics: np.ndarray,
    cam_to_ego: np.ndarray,
    image_hw: tuple[int, int],
    grid_hw: tuple[int, int],
    range_m: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Coverage (N_cam, gh, gw) in {0, 1} and depth in metres (N_cam, gh, gw; 0 where uncovered).

    Each box within ``range_m`` is projected into every camera (intrinsics (N_cam, 3, 3) at ``image_hw``,
    camera-to-ego (N_cam, 4, 4), OpenCV axes); the feature cells its 2D bounding box overlaps are covered,
    at the depth of its nearest corner (the nearest box wins a shared cell). Occlusion is not modelled.
    """
    n_cam = intrinsics.shape[0]
    gh, gw = grid_hw
    cover = np.zeros((n_cam, gh, gw), dtype=np.float32)
    depth = np.zeros((n_cam, gh, gw), dtype=np.float32)
    if boxes is None or len(boxes) == 0:
        return cover, depth
    keep = np.linalg.norm(boxes.xyz[:, :2], axis=1) <= range_m
    if not keep.any():
        return cover, depth
    corners = box_corners(boxes.xyz[keep], boxes.lwh[keep], boxes.yaw_rad[keep]).reshape(-1, 3)  # (M*8, 3)
    m = int(keep.sum())
    h, w = image_hw
    cell_h, cell_w = h / gh, w / gw
    for k in range(n_cam):
        # corners behind the camera are projected at MIN_DEPTH_M rather than dropped (geometry.project_points
        # drops them): a box the ego is alongside still covers the image edge it reaches into
        cam = transform_points(invert_transform(cam_to_ego[k]), corners).reshape(m, 8, 3)
        z = cam[..., 2]
        seen = (z > MIN_DEPTH_M).any(axis=1)
        zc = np.maximum(z, MIN_DEPTH_M)
        u = intrinsics[k, 0, 0] * cam[..., 0] / zc + intrinsics[k, 0, 2]
        v = intrinsics[k, 1, 1] * cam[..., 1] / zc + intrinsics[k, 1, 2]
        for j in np.flatnonzero(seen):
            u0, u1 = max(u[j].min(), 0.0), min(u[j].max(), float(w))
            v0, v1 = max(v[j].min(), 0.0), min(v[j].max(), float(h))
            if u1 <= u0 or v1 <= v0:
                continue  # outside this camera's image
            c0, c1 = int(u0 // cell_w), min(int(math.ceil(u1 / cell_w)), gw)
            r0, r1 = int(v0 // cell_h), min(int(math.ceil(v1 / cell_h)), gh)
            d = float(zc[j].min())
            patch = depth[k, r0:r1, c0:c1]
            nearer = (cover[k, r0:r1, c0:c1] == 0) | (patch > d)
            patch[nearer] = d
            cover[k, r0:r1, c0:c1] = 1.0
    return cover, depth


class CameraAuxHead(nn.Module):
    """Feature maps (B, N_cam, D, gh, gw) -> logits of coverage and log depth, (B, N_cam, 2, gh, gw)."""

    def __init__(self, cfg: CameraAuxConfig, dim: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.net = nn.Sequential(nn.Conv2d(dim, dim, 3, padding=1), nn.GELU(), nn.Conv2d(dim, 2, 1))

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        b, n = feat.shape[:2]
        out = self.net(feat.flatten(0, 1))
        return out.view(b, n, 2, *out.shape[-2:])

    def loss(
        self,
        feat: torch.Tensor,
        samples: Sequence[Sample],
        intrinsics: torch.Tensor,
        extrinsics: torch.Tensor,
        image_hw: tuple[int, int],
    ) -> torch.Tensor | None:
        """Coverage BCE over every cell plus ``depth_weight`` x L1 of log depth over covered cells, for the
        samples that carry boxes; None when none does."""
        n_cam, gh, gw = feat.shape[1], feat.shape[-2], feat.shape[-1]
        k_np = intrinsics[:, :n_cam].detach().cpu().double().numpy()
        e_np = extrinsics[:, :n_cam].detach().cpu().double().numpy()
        rows, covers, depths = [], [], []
        for i, sample in enumerate(samples):
            if sample.targets.boxes is None:
                continue
            cov, dep = camera_targets(sample.targets.boxes, k_np[i], e_np[i], image_hw, (gh, gw), self.cfg.range_m)
            rows.append(i)
            covers.append(cov)
            depths.append(dep)
        if not rows:
            return None
        out = self(feat[rows]).float()  # (R, N, 2, gh, gw)
        cover = torch.from_numpy(np.stack(covers)).to(out.device)
        loss = F.binary_cross_entropy_with_logits(out[:, :, 0], cover)
        on = cover > 0
        if self.cfg.depth_weight > 0 and bool(on.any()):
            target = torch.from_numpy(np.stack(depths)).to(out.device).clamp(min=MIN_DEPTH_M).log()
            loss = loss + self.cfg.depth_weight * (out[:, :, 1][on] - target[on]).abs().mean()
        return loss
