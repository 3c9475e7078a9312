"""Speed-change classification (TransFuser++'s split of path and speed) for the planner head.

A regressed trajectory averages the modes of the data: where the expert brakes for the car ahead in some
frames and not in others that look alike, an L1 head predicts the median, which is "do not brake" until
it is too late. TransFuser++ (Jaeger et al., ICCV 2023) predicts the path by regression and the target
speed as a class, and drives the expected speed of the class distribution (confidence-weighted), so an
uncertain "car ahead" already slows the car in proportion to its probability.

Here the classes are changes of speed in m/s over the next second, relative to the current speed (as the
head's constant-velocity prior: an unsure classifier keeps the speed instead of drifting to the middle of
the speed range). The label of a sample is the expert's mean speed between 0.5 s and 1.5 s minus the
current speed, spread over the two neighbouring classes (two-hot), so the expectation of a perfect
classifier is the label itself. At inference the head's path is kept and re-timed (``planner_head.retime``):
the speed goes from the current speed to the target speed linearly over ``ramp_s`` and holds it.
"""

from __future__ import annotations

import torch
from torch import nn

from drive_vla.types import STEP_DT_S

LABEL_STEPS = (0, 2)  # waypoints at 0.5 s and 1.5 s: their distance over 1 s is the label speed


class TargetSpeedHead(nn.Module):
    """(B, W) head features -> (B, K) logits over ``classes`` (speed changes in m/s, ascending)."""

    def __init__(self, width: int, classes: list[float]) -> None:
        super().__init__()
        self.register_buffer("classes", torch.tensor(classes, dtype=torch.float32), persistent=False)
        self.net = nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.Linear(width, len(classes)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def target_speed(
        self, logits: torch.Tensor, speed_mps: torch.Tensor, brake_threshold: float | None = None
    ) -> torch.Tensor:
        """(B, K) logits, (B,) current speeds -> (B,) target speed: the current one plus the expected change
        (at least 0); 0 where P(first class, the hardest braking) >= ``brake_threshold``."""
        p = logits.float().softmax(-1)
        change = (p * self.classes.to(p.device)).sum(-1)
        speed = (speed_mps.to(p.device).float().clamp(min=0.0) + change).clamp(min=0.0)
        if brake_threshold is not None:
            speed = torch.where(p[:, 0] >= brake_threshold, torch.zeros_like(speed), speed)
        return speed

    def loss(
        self, logits: torch.Tensor, poses: torch.Tensor, mask: torch.Tensor, speed_mps: torch.Tensor
    ) -> torch.Tensor | None:
        """Cross-entropy against the two-hot label of ``poses`` (B, T, 3) at current speeds ``speed_mps`` (B,);
        None when no sample has one."""
        speed, ok = label_speed(poses, mask)
        if not bool(ok.any()):
            return None
        change = speed - speed_mps.to(speed.device).float().clamp(min=0.0)
        target = two_hot(change[ok], self.classes.to(poses.device))
        logp = logits[ok].float().log_softmax(-1)
        return -(target * logp).sum(-1).mean()


def label_speed(poses: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T, 3) future poses and (B, T) validity -> ((B,) speed in m/s at about 1 s, (B,) labelled)."""
    a, b = LABEL_STEPS
    speed = (poses[:, b, :2] - poses[:, a, :2]).norm(dim=-1) / ((b - a) * STEP_DT_S)
    return speed.float(), mask[:, a].bool() & mask[:, b].bool()


def two_hot(value: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """(N,) values -> (N, K) weights on the two classes around each value (clamped to the range)."""
    v = value.clamp(float(classes[0]), float(classes[-1]))
    hi = torch.searchsorted(classes, v, right=False).clamp(1, len(classes) - 1)
    lo = hi - 1
    w_hi = ((v - classes[lo]) / (classes[hi] - classes[lo])).clamp(0.0, 1.0)
    out = torch.zeros(len(v), len(classes), dtype=v.dtype, device=v.device)
    out.scatter_(1, lo[:, None], (1.0 - w_hi)[:, None])
    out.scatter_add_(1, hi[:, None], w_hi[:, None])
    return out
