"""Planner head: the LM hidden state at ``<plan>`` -> continuous waypoints in one pass (MLP or GRU, optional VAE)."""

from __future__ import annotations

import torch
from torch import nn

from drive_vla.model.config import PlannerHeadConfig
from drive_vla.model.state import EGO_STATUS_DIM, RouteTargetEncoder
from drive_vla.types import FUTURE_STEPS, STEP_DT_S

# Output scales so the layers work in units of order one: [x m, y m, yaw rad].
POSE_SCALE = (10.0, 3.0, 0.3)


class PlannerHead(nn.Module):
    """(B, H_lm) hidden state -> (B, FUTURE_STEPS, 3) poses [x, y, yaw] in the ego frame.

    With ``vae_latent > 0`` a latent z (prior p(z|h); posterior q(z|h, ground truth) while training)
    conditions the decoder, ORION-style; inference uses the prior mean. With ``ego_status`` the ego
    features (``state.ego_status_features``) enter the head beside the hidden state.
    """

    def __init__(
        self, cfg: PlannerHeadConfig, lm_hidden: int, steps: int = FUTURE_STEPS, route_target: bool = False
    ) -> None:
        super().__init__()
        self.cfg = cfg
        self.steps = steps
        w = cfg.hidden
        self.register_buffer("pose_scale", torch.tensor(POSE_SCALE), persistent=False)
        self.inp = nn.Sequential(nn.LayerNorm(lm_hidden), nn.Linear(lm_hidden, w), nn.GELU())
        if cfg.ego_status != "none":
            self.ego_in = nn.Sequential(nn.Linear(EGO_STATUS_DIM, w), nn.GELU(), nn.Linear(w, w), nn.GELU())
        self.route_in = RouteTargetEncoder(w) if route_target else None
        if cfg.vae_latent > 0:
            self.prior = nn.Linear(w, 2 * cfg.vae_latent)
            self.posterior = nn.Sequential(nn.Linear(w + steps * 4, w), nn.GELU(), nn.Linear(w, 2 * cfg.vae_latent))
            self.latent_in = nn.Linear(cfg.vae_latent, w)
        if cfg.kind == "mlp":
            self.decoder = nn.Sequential(nn.Linear(w, w), nn.GELU(), nn.Linear(w, steps * 3))
        elif cfg.kind == "gru":
            self.gru = nn.GRUCell(3, w)
            self.delta = nn.Linear(w, 3)
        else:
            raise ValueError(f"planner_head.kind: got {cfg.kind!r}, expected 'mlp' or 'gru'")

    def forward(
        self,
        hidden: torch.Tensor,
        target: torch.Tensor | None = None,
        target_mask: torch.Tensor | None = None,
        speed_mps: torch.Tensor | None = None,
        ego_status: torch.Tensor | None = None,
        route_target: torch.Tensor | None = None,
        route_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Waypoints from the ``<plan>`` hidden state.

        Args:
            hidden: (B, H_lm).
            speed_mps: (B,) current ego speed; required with ``residual_to_constant_velocity``.
            target: (B, FUTURE_STEPS, 3) ground-truth poses (only used by the VAE posterior while training).
            target_mask: (B, FUTURE_STEPS) bool validity of ``target``.
            ego_status: (B, EGO_STATUS_DIM) ego features; required with ``ego_status``.
            route_target: (B, ROUTE_TARGET_POINTS, 2) route points and ``route_mask`` (B,) bool; required
                when the head was built with ``route_target``.

        Returns:
            (poses (B, FUTURE_STEPS, 3) in metres/radians, KL (B,) or None).
        """
        x = self.inp(hidden)  # (B, W)
        if self.cfg.ego_status != "none":
            if ego_status is None:
                raise ValueError(
                    "ego_status: got None, expected (B, EGO_STATUS_DIM) features (planner_head.ego_status)"
                )
            x = x + self.ego_in(ego_status.to(x.dtype))
        if self.route_in is not None:
            if route_target is None or route_mask is None:
                raise ValueError(
                    "route_target: got None, expected (B, P, 2) points and a (B,) mask (route_target=true)"
                )
            x = x + self.route_in(route_target, route_mask).to(x.dtype)
        kl = None
        if self.cfg.vae_latent > 0:
            mu_p, logvar_p = self.prior(x).chunk(2, dim=-1)
            if self.training and target is not None:
                mask = torch.ones(target.shape[:2], dtype=torch.bool, device=target.device)
                mask = mask if target_mask is None else target_mask
                gt = (target.to(x.dtype) / self.pose_scale.to(x.dtype)) * mask[..., None]
                post_in = torch.cat([x, gt.flatten(1), mask.to(x.dtype)], dim=1)
                mu_q, logvar_q = self.posterior(post_in).chunk(2, dim=-1)
                z = mu_q + torch.randn_like(mu_q) * (0.5 * logvar_q).exp()
                kl = 0.5 * (logvar_p - logvar_q + (logvar_q.exp() + (mu_q - mu_p) ** 2) / logvar_p.exp() - 1.0).sum(
                    -1
                )  # (B,)
            else:
                z = mu_p
            x = x + self.latent_in(z)
        scale = self.pose_scale.to(x.dtype)
        if self.cfg.kind == "mlp":
            poses = self.decoder(x).view(-1, self.steps, 3) * scale  # (B, T, 3)
        else:
            h, prev, out = x, torch.zeros(x.shape[0], 3, dtype=x.dtype, device=x.device), []
            for _ in range(self.steps):
                h = self.gru(prev, h)
                prev = prev + self.delta(h)  # cumulative, in scaled units
                out.append(prev)
            poses = torch.stack(out, dim=1) * scale  # (B, T, 3)
        if self.cfg.residual_to_constant_velocity:
            if speed_mps is None:
                raise ValueError("speed_mps: got None, expected (B,) ego speeds for the constant-velocity prior")
            t = STEP_DT_S * torch.arange(1, self.steps + 1, dtype=poses.dtype, device=poses.device)  # (T,)
            prior_x = speed_mps.to(poses.dtype).clamp(min=0.0)[:, None] * t[None]  # (B, T)
            poses = poses + torch.stack([prior_x, torch.zeros_like(prior_x), torch.zeros_like(prior_x)], dim=-1)
        return poses, kl
