"""State encoder: ego vector, past poses, navigation command and route target -> state token(s) in the LM's space."""

from __future__ import annotations

import torch
from torch import nn

from drive_vla.types import HISTORY_STEPS, JUNCTION_HORIZON_M, ROUTE_TARGET_POINTS

# Rough scales so the MLP sees values of order one: [speed m/s, ax, ay m/s^2, yaw rate rad/s, steer, from_can]
EGO_SCALE = (10.0, 3.0, 3.0, 0.5, 1.0, 1.0)
HISTORY_SCALE = (10.0, 5.0, 0.5)  # past [x m, y m, yaw rad]
NUM_COMMANDS = 3
ROUTE_TARGET_SCALE_M = 20.0  # route points [x, y] in metres / this
SPEED_LIMIT_SCALE_MPS = 10.0  # speed limit and its gap to the current speed, m/s / this
JUNCTION_NEAR_M = 25.0  # the junction distance also enters as exp(-d / this): fine resolution near the line


EGO_STATUS_DIM = len(EGO_SCALE) + HISTORY_STEPS * 3 + NUM_COMMANDS


LATERAL_EGO = (2, 3, 4)  # ay, yaw rate, steer in EgoState.as_vector
SPEED_ONLY_EGO = (0, 5)  # speed and the source flag: what ModelConfig.ego_inputs "speed" keeps
LATERAL_HISTORY = (1, 2)  # past y, yaw


def ego_status_features(
    ego: torch.Tensor, history: torch.Tensor, command: torch.Tensor, lateral: bool = True
) -> torch.Tensor:
    """(B, 6) ego, (B, HISTORY_STEPS, 3) past poses, (B,) command -> (B, EGO_STATUS_DIM) inputs of order one.

    With ``lateral`` False the lateral entries (ay, yaw rate, steer, past y and yaw) are zero.
    """
    dtype = ego.dtype if ego.is_floating_point() else torch.float32
    ego = ego.to(dtype) / ego.new_tensor(EGO_SCALE, dtype=dtype)  # (B, 6)
    hist = history.to(dtype) / history.new_tensor(HISTORY_SCALE, dtype=dtype)  # (B, H, 3)
    if not lateral:
        ego, hist = ego.clone(), hist.clone()
        ego[:, list(LATERAL_EGO)] = 0.0
        hist[..., list(LATERAL_HISTORY)] = 0.0
    hist = hist.flatten(1)
    onehot = nn.functional.one_hot(command.long(), NUM_COMMANDS).to(dtype)
    return torch.cat([ego, hist, onehot], dim=1)


def route_target_inputs(batch, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """A Batch's (B, ROUTE_TARGET_POINTS, 2) route points and (B,) bool mask on ``device`` (absent: mask False)."""
    n = int(batch.ego.shape[0])
    if batch.route_target is None:
        return torch.zeros(n, ROUTE_TARGET_POINTS, 2, device=device), torch.zeros(n, dtype=torch.bool, device=device)
    return batch.route_target.to(device), batch.route_target_mask.to(device)


def scalar_inputs(batch, name: str, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """A Batch's optional per-sample scalar ``name`` ("speed_limit", "junction") as (B,) values and its (B,)
    bool mask ``<name>_mask`` on ``device`` (absent from the batch: zeros and mask False)."""
    values = getattr(batch, name)
    if values is None:
        n = int(batch.ego.shape[0])
        return torch.zeros(n, device=device), torch.zeros(n, dtype=torch.bool, device=device)
    return values.to(device), getattr(batch, f"{name}_mask").to(device)


class SpeedLimitEncoder(nn.Module):
    """(B,) speed limit, (B,) current speed, (B,) mask -> (B, width): the limit and how far below it the car
    is. Where the mask is False (unknown, e.g. nuScenes) the output is a learned "no limit" vector."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(2, width), nn.GELU(), nn.Linear(width, width))
        self.no_limit = nn.Parameter(torch.zeros(width))

    def forward(self, limit: torch.Tensor, speed: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        dtype = self.no_limit.dtype
        limit, speed = limit.to(dtype), speed.to(dtype)
        x = self.mlp(torch.stack([limit, limit - speed], dim=1) / SPEED_LIMIT_SCALE_MPS)  # (B, W)
        return torch.where(mask.bool()[:, None], x, self.no_limit.expand_as(x))


def unknown_vector(learned: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    """A learned "unknown" vector broadcast to ``like`` (B, W), or zeros where the model has none."""
    if learned is None:
        return torch.zeros_like(like)
    return learned.to(like.dtype).expand_as(like)


class JunctionEncoder(nn.Module):
    """(B,) distance to the next junction along the route, (B,) current speed, (B,) mask -> (B, width).
    Where the mask is False (unknown, e.g. nuScenes) the output is a learned "no junction information" vector."""

    def __init__(self, width: int, range_m: float = JUNCTION_HORIZON_M) -> None:
        super().__init__()
        self.range_m = float(range_m)  # farther junctions read as this distance ("none within range")
        self.mlp = nn.Sequential(nn.Linear(3, width), nn.GELU(), nn.Linear(width, width))
        self.unknown = nn.Parameter(torch.zeros(width))

    def forward(self, distance: torch.Tensor, speed: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        dtype = self.unknown.dtype
        d, speed = distance.to(dtype).clamp(max=self.range_m), speed.to(dtype)
        feats = [d / self.range_m, torch.exp(-d / JUNCTION_NEAR_M), speed / SPEED_LIMIT_SCALE_MPS]
        x = self.mlp(torch.stack(feats, dim=1))  # (B, W)
        return torch.where(mask.bool()[:, None], x, self.unknown.expand_as(x))


class RouteTargetEncoder(nn.Module):
    """(B, ROUTE_TARGET_POINTS, 2) route points in the ego frame, (B,) mask -> (B, width).

    Where the mask is False (no route, e.g. nuScenes) the output is a learned "no target" vector, so
    the model never reads a target that does not exist.
    """

    def __init__(self, width: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(ROUTE_TARGET_POINTS * 2, width), nn.GELU(), nn.Linear(width, width))
        self.no_target = nn.Parameter(torch.zeros(width))

    def forward(self, points: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        dtype = self.no_target.dtype
        x = self.mlp((points.to(dtype) / ROUTE_TARGET_SCALE_M).flatten(1))  # (B, W)
        return torch.where(mask.bool()[:, None], x, self.no_target.expand_as(x))


class StateEncoder(nn.Module):
    """(B, 6) ego, (B, HISTORY_STEPS, 3) history, (B,) command [, route target] -> (B, num_tokens, lm_hidden).

    With ``route_target`` the next route points (or the learned "no target" vector) enter the state too,
    and with ``speed_limit`` the speed limit (or the learned "no limit" vector), and with ``junction`` the
    distance to the next junction (or the learned "unknown" vector).
    """

    def __init__(
        self,
        lm_hidden: int,
        num_tokens: int = 1,
        width: int = 128,
        route_target: bool = False,
        speed_limit: bool = False,
        junction: bool = False,
        unknown_ego: bool = False,
        junction_range_m: float = JUNCTION_HORIZON_M,
    ) -> None:
        super().__init__()
        self.route = RouteTargetEncoder(width) if route_target else None
        self.limit = SpeedLimitEncoder(width) if speed_limit else None
        self.junction = JunctionEncoder(width, junction_range_m) if junction else None
        self.num_tokens = num_tokens
        self.register_buffer("ego_scale", torch.tensor(EGO_SCALE), persistent=False)
        self.register_buffer("history_scale", torch.tensor(HISTORY_SCALE), persistent=False)
        self.command_embed = nn.Embedding(NUM_COMMANDS, width)
        self.mlp = nn.Sequential(
            nn.Linear(len(EGO_SCALE) + HISTORY_STEPS * 3, width),
            nn.GELU(),
            nn.Linear(width, width),
        )
        self.out = nn.Sequential(nn.GELU(), nn.Linear(width, num_tokens * lm_hidden))
        self.lm_hidden = lm_hidden
        # Stands in for ego, past poses and command where they are unknown; without it (a model trained with
        # ego_dropout 0, or saved before it existed) a zero vector does.
        self.unknown_ego = nn.Parameter(torch.zeros(width)) if unknown_ego else None

    def forward(
        self,
        ego: torch.Tensor,
        history: torch.Tensor,
        command: torch.Tensor,
        route_target: torch.Tensor | None = None,
        route_mask: torch.Tensor | None = None,
        speed_limit: torch.Tensor | None = None,
        limit_mask: torch.Tensor | None = None,
        junction: torch.Tensor | None = None,
        junction_mask: torch.Tensor | None = None,
        ego_known: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """State tokens; where ``ego_known`` (B,) is False the ego, past poses and command are replaced by the
        learned "unknown ego" vector (the route, speed-limit and junction inputs still add theirs)."""
        dtype = self.command_embed.weight.dtype
        speed = ego[:, 0]
        ego = ego.to(dtype) / self.ego_scale.to(dtype)  # (B, 6)
        hist = (history.to(dtype) / self.history_scale.to(dtype)).flatten(1)  # (B, HISTORY_STEPS*3)
        x = self.mlp(torch.cat([ego, hist], dim=1)) + self.command_embed(command.long())  # (B, W)
        if ego_known is not None:
            x = torch.where(ego_known.bool()[:, None], x, unknown_vector(self.unknown_ego, x))
        if self.route is not None:
            if route_target is None or route_mask is None:
                raise ValueError(
                    "route_target: got None, expected (B, P, 2) points and a (B,) mask (route_target=true)"
                )
            x = x + self.route(route_target, route_mask)
        if self.limit is not None:
            if speed_limit is None or limit_mask is None:
                raise ValueError("speed_limit: got None, expected (B,) limits and a (B,) mask (speed_limit=true)")
            x = x + self.limit(speed_limit, speed, limit_mask)
        if self.junction is not None:
            if junction is None or junction_mask is None:
                raise ValueError("junction: got None, expected (B,) distances and a (B,) mask (junction=true)")
            x = x + self.junction(junction, speed, junction_mask)
        return self.out(x).view(-1, self.num_tokens, self.lm_hidden)  # (B, S, H_lm)
