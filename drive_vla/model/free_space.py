"""Free distance along the route: a head that says how far the ego's lane is clear, and a speed cap from it.

The planner head's regressed waypoints react to a car in the ego's path only through the rare frames where
the expert brakes hard; a plan that keeps the median speed drives into a car standing in the lane. Here a
small head on the planner's hidden state predicts, in every frame, the distance along the route to the
first annotated box that reaches into the ego's corridor (the route polyline through the route target points,
widened by ``corridor_m`` either side), up to ``max_m``. Every training frame carries that label, whether
the expert brakes or not.

With ``source="own"`` the head has a backbone of its own on the front camera, trained apart from the driving
model by the perception stage (``drive_vla.training.perception``) on many frames in which the same road is
seen with and without a car standing in the lane (obstacle scenes): read from the driving model's features
or hidden state, the head fits the distance from the scene's context, not from the car (BENCHMARKS.md,
rounds 6 and 13).

With ``cap_speed``, outside training the head's plan is re-timed (``planner_head.retime``) where its speed
exceeds what the predicted gap allows at the expert's time gap: ``v <= (d - standstill_m) / time_gap_s``,
the equilibrium of the expert's IDM car following. The route target points are an input (the embedded
world's route, CARLA's global plan); without them (nuScenes) the label is absent and the cap is not applied.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from drive_vla.model.head_configs import FreeSpaceConfig
from drive_vla.types import Boxes, Sample

STEP_M = 0.5  # spacing of the corridor's test points along the route


def route_polyline(points: np.ndarray, max_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Test points every ``STEP_M`` along ego origin -> route points -> on along the last segment, to ``max_m``:
    ((S, 2) points, (S,) arc lengths)."""
    verts = np.concatenate([np.zeros((1, 2)), np.asarray(points, dtype=np.float64).reshape(-1, 2)])
    seg = np.diff(verts, axis=0)
    lens = np.linalg.norm(seg, axis=1)
    keep = lens > 1e-6
    seg, lens = seg[keep], lens[keep]
    if len(seg) == 0:
        seg, lens = np.array([[1.0, 0.0]]), np.array([1.0])
    start = np.concatenate([[0.0], np.cumsum(lens)])
    s = np.arange(0.0, max_m + 1e-9, STEP_M)
    k = np.clip(np.searchsorted(start, s, side="right") - 1, 0, len(seg) - 1)  # the last segment extends
    base = np.concatenate([np.zeros((1, 2)), np.cumsum(seg, axis=0)])[k]
    xy = base + seg[k] / lens[k, None] * (s - start[k])[:, None]
    return xy, s


def free_distance(boxes: Boxes | None, route_points: np.ndarray, corridor_m: float, max_m: float) -> float:
    """Arc length along the route polyline to the first test point within ``corridor_m`` of a box's footprint
    (the box widened by ``corridor_m`` on every side); ``max_m`` when nothing is in the corridor."""
    if boxes is None or len(boxes) == 0:
        return float(max_m)
    xy, s = route_polyline(route_points, max_m)
    d = xy[None, :, :] - boxes.xyz[:, None, :2]  # (N, S, 2)
    c, si = np.cos(boxes.yaw_rad)[:, None], np.sin(boxes.yaw_rad)[:, None]
    along = c * d[..., 0] + si * d[..., 1]
    across = -si * d[..., 0] + c * d[..., 1]
    inside = (np.abs(along) <= boxes.lwh[:, None, 0] / 2 + corridor_m) & (
        np.abs(across) <= boxes.lwh[:, None, 1] / 2 + corridor_m
    )
    hit = inside.any(axis=0)
    return float(s[np.argmax(hit)]) if hit.any() else float(max_m)


POOL_HW = (5, 8)  # the front camera's feature map is pooled to this grid for source="camera" and "own"


def own_backbone(cfg: FreeSpaceConfig) -> tuple[nn.Module, int]:
    """The "own" source's timm backbone (random weights, cut after ``feature_index``) and its channel count."""
    from drive_vla.model.vision import timm_backbone  # vision -> config -> this module: import when built

    net = timm_backbone(cfg.backbone, cfg.feature_index, field="free_space")
    return net, int(net.feature_info.channels()[-1])


class FreeSpaceHead(nn.Module):
    """Predicted free distance (B,) in metres (unbounded: a linear output around ``max_m``, so nothing
    saturates at "clear", the majority label; ``speed_cap`` clamps it to [0, max_m]) from the hidden state (B, H);
    with ``source="camera"`` from ``(feature maps (B, N_cam, D, fh, fw), route points (B, P, 2))``; with
    ``source="own"`` from ``(normalised front-camera images (B, 3, h, w), route points (B, P, 2))``."""

    def __init__(self, cfg: FreeSpaceConfig, hidden_size: int, feature_dim: int = 0, width: int = 128) -> None:
        super().__init__()
        self.cfg = cfg
        if cfg.source in ("camera", "own"):
            if cfg.source == "own":
                self.backbone, feature_dim = own_backbone(cfg)
            self.conv = nn.Sequential(
                nn.Conv2d(feature_dim, 32, 3, padding=1), nn.GELU(), nn.AdaptiveAvgPool2d(POOL_HW)
            )
            n_in = 32 * POOL_HW[0] * POOL_HW[1] + 4
            self.net = nn.Sequential(nn.Linear(n_in, width), nn.GELU(), nn.Linear(width, 1))
        else:
            self.net = nn.Sequential(
                nn.LayerNorm(hidden_size), nn.Linear(hidden_size, width), nn.GELU(), nn.Linear(width, 1)
            )

    def forward(self, h: torch.Tensor | tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        if self.cfg.source in ("camera", "own"):
            maps, route = h
            dtype = self.conv[0].weight.dtype
            front = self.backbone(maps.to(dtype))[-1] if self.cfg.source == "own" else maps[:, 0]  # CAM_FRONT
            x = self.conv(front.to(dtype)).flatten(1)
            x = torch.cat([x, route.to(dtype).flatten(1)[:, :4] / self.cfg.max_m], dim=1)
            return self.cfg.max_m * (1.0 + self.net(x).float().squeeze(-1))
        return self.cfg.max_m * (1.0 + self.net(h).float().squeeze(-1))

    def select(self, h, rows: list[int]):
        """The rows ``rows`` of an input of ``forward``."""
        return (h[0][rows], h[1][rows]) if isinstance(h, tuple) else h[rows]

    def loss(self, h, samples: Sequence[Sample], route: torch.Tensor, route_mask: torch.Tensor) -> torch.Tensor | None:
        """Squared error (in units of ``max_m``) over the samples that have boxes and route points, so the head
        predicts the mean distance given what it reads (L1 would give the median, "clear" wherever a car in the
        corridor is less likely than not); None when no sample has a label."""
        pts = route.detach().cpu().numpy()
        rows, labels = [], []
        for i, sample in enumerate(samples):
            if sample.targets.boxes is None or not bool(route_mask[i]):
                continue
            rows.append(i)
            labels.append(free_distance(sample.targets.boxes, pts[i], self.cfg.corridor_m, self.cfg.max_m))
        if not rows:
            return None
        return self.label_loss(self(self.select(h, rows)), torch.tensor(labels))

    def label_loss(self, pred: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean squared error of predicted (B,) against labelled free distances, in units of ``max_m``."""
        return (((pred - labels.to(pred.device, pred.dtype)) / self.cfg.max_m) ** 2).mean()

    def speed_cap(self, h) -> torch.Tensor:
        """(B,) the highest speed the predicted gap allows at ``time_gap_s`` (m/s, >= 0)."""
        return ((self(h).clamp(0.0, self.cfg.max_m) - self.cfg.standstill_m) / self.cfg.time_gap_s).clamp(min=0.0)


def junction_approach_cap(cfg: FreeSpaceConfig, junction_m: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """(B,) the speed allowed on the approach to the route's yield line ``junction_m`` (B,) metres ahead: at most
    ``sqrt(v^2 + 2 a d)`` within ``cfg.junction_approach_m`` of it; inf where it is farther, unknown (``known``
    False) or the cap is off."""
    v, a = cfg.junction_approach_mps, cfg.junction_approach_decel_mps2
    d = junction_m.clamp(min=0.0)
    cap = torch.sqrt(v * v + 2.0 * a * d)
    near = known.bool() & (junction_m < cfg.junction_approach_m) & (v > 0)
    return torch.where(near, cap, torch.full_like(cap, float("inf")))


def plan_speed(poses: torch.Tensor) -> torch.Tensor:
    """(B, T, 3) poses -> (B,) the plan's mean speed over its first second (two 0.5 s steps)."""
    return poses[:, 1, :2].norm(dim=-1) / 1.0
