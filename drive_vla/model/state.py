"""State encoder: ego vector, past poses and navigation command -> state token(s) in the LM's space."""

from __future__ import annotations

import torch
from torch import nn

from drive_vla.types import HISTORY_STEPS

# Rough scales so the MLP sees values of order one: [speed m/s, ax, ay m/s^2, yaw rate rad/s, steer, from_can]
EGO_SCALE = (10.0, 3.0, 3.0, 0.5, 1.0, 1.0)
HISTORY_SCALE = (10.0, 5.0, 0.5)  # past [x m, y m, yaw rad]
NUM_COMMANDS = 3


EGO_STATUS_DIM = len(EGO_SCALE) + HISTORY_STEPS * 3 + NUM_COMMANDS


LATERAL_EGO = (2, 3, 4)  # ay, yaw rate, steer in EgoState.as_vector
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


class StateEncoder(nn.Module):
    """(B, 6) ego, (B, HISTORY_STEPS, 3) history, (B,) command -> (B, num_tokens, lm_hidden)."""

    def __init__(self, lm_hidden: int, num_tokens: int = 1, width: int = 128) -> None:
        super().__init__()
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

    def forward(self, ego: torch.Tensor, history: torch.Tensor, command: torch.Tensor) -> torch.Tensor:
        dtype = self.command_embed.weight.dtype
        ego = ego.to(dtype) / self.ego_scale.to(dtype)  # (B, 6)
        hist = (history.to(dtype) / self.history_scale.to(dtype)).flatten(1)  # (B, HISTORY_STEPS*3)
        x = self.mlp(torch.cat([ego, hist], dim=1)) + self.command_embed(command.long())  # (B, W)
        return self.out(x).view(-1, self.num_tokens, self.lm_hidden)  # (B, S, H_lm)
