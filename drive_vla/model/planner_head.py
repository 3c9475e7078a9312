"""Planner head: the LM hidden state at ``<plan>`` -> continuous waypoints in one pass (MLP or GRU, optional VAE)."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from drive_vla.model.config import PlannerHeadConfig
from drive_vla.model.state import (
    EGO_STATUS_DIM,
    JunctionEncoder,
    RouteTargetEncoder,
    SpeedLimitEncoder,
    unknown_vector,
)
from drive_vla.model.target_speed import TargetSpeedHead
from drive_vla.types import FUTURE_STEPS, JUNCTION_HORIZON_M, STEP_DT_S

# Output scales so the layers work in units of order one: [x m, y m, yaw rad].
POSE_SCALE = (10.0, 3.0, 0.3)


class HeadOutput(NamedTuple):
    """What the planner head returns: poses (B, T, 3), the VAE's KL (B,) or None, target-speed logits (B, K) or None."""

    poses: torch.Tensor
    kl: torch.Tensor | None
    speed_logits: torch.Tensor | None


class PlannerHead(nn.Module):
    """(B, H_lm) hidden state -> (B, FUTURE_STEPS, 3) poses [x, y, yaw] in the ego frame.

    With ``vae_latent > 0`` a latent z (prior p(z|h); posterior q(z|h, ground truth) while training)
    conditions the decoder, ORION-style; inference uses the prior mean. With ``ego_status`` the ego
    features (``state.ego_status_features``) enter the head beside the hidden state.
    """

    def __init__(
        self,
        cfg: PlannerHeadConfig,
        lm_hidden: int,
        steps: int = FUTURE_STEPS,
        route_target: bool = False,
        speed_limit: bool = False,
        junction: bool = False,
        unknown_ego: bool = False,
        junction_range_m: float = JUNCTION_HORIZON_M,
    ) -> None:
        super().__init__()
        self.cfg = cfg
        self.steps = steps
        w = cfg.hidden
        self.register_buffer("pose_scale", torch.tensor(POSE_SCALE), persistent=False)
        self.inp = nn.Sequential(nn.LayerNorm(lm_hidden), nn.Linear(lm_hidden, w), nn.GELU())
        if cfg.ego_status != "none":
            self.ego_in = nn.Sequential(nn.Linear(EGO_STATUS_DIM, w), nn.GELU(), nn.Linear(w, w), nn.GELU())
        self.unknown_ego = nn.Parameter(torch.zeros(w)) if unknown_ego and cfg.ego_status != "none" else None
        self.route_in = RouteTargetEncoder(w) if route_target else None
        self.limit_in = SpeedLimitEncoder(w) if speed_limit else None
        self.junction_in = JunctionEncoder(w, junction_range_m) if junction else None
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
        self.speed = TargetSpeedHead(w, list(cfg.target_speed_classes)) if cfg.target_speed_classes else None

    def forward(
        self,
        hidden: torch.Tensor,
        target: torch.Tensor | None = None,
        target_mask: torch.Tensor | None = None,
        speed_mps: torch.Tensor | None = None,
        ego_status: torch.Tensor | None = None,
        route_target: torch.Tensor | None = None,
        route_mask: torch.Tensor | None = None,
        speed_limit: torch.Tensor | None = None,
        limit_mask: torch.Tensor | None = None,
        junction: torch.Tensor | None = None,
        junction_mask: torch.Tensor | None = None,
        ego_known: torch.Tensor | None = None,
    ) -> HeadOutput:
        """Waypoints from the ``<plan>`` hidden state.

        Args:
            hidden: (B, H_lm).
            speed_mps: (B,) current ego speed; required with ``residual_to_constant_velocity``.
            target: (B, FUTURE_STEPS, 3) ground-truth poses (only used by the VAE posterior while training).
            target_mask: (B, FUTURE_STEPS) bool validity of ``target``.
            ego_status: (B, EGO_STATUS_DIM) ego features; required with ``ego_status``.
            route_target: (B, ROUTE_TARGET_POINTS, 2) route points and ``route_mask`` (B,) bool; required
                when the head was built with ``route_target``.
            speed_limit: (B,) speed limits in m/s and ``limit_mask`` (B,) bool; required (with ``speed_mps``)
                when the head was built with ``speed_limit``.
            junction: (B,) distances to the next junction in metres and ``junction_mask`` (B,) bool;
                required (with ``speed_mps``) when the head was built with ``junction``.
            ego_known: (B,) bool; where False the ego-status features are replaced by the learned "unknown
                ego" vector (the caller passes a zero speed there, so the prior is a standstill).

        Returns:
            HeadOutput: poses (B, FUTURE_STEPS, 3) in metres/radians, KL (B,) or None, target-speed logits
            (B, K) or None. With ``target_speed_classes``, outside training the poses are re-timed to the
            classifier's target speed (``retime``); while training they are the regressed ones.
        """
        x = self.inp(hidden)  # (B, W)
        if self.cfg.ego_status != "none":
            if ego_status is None:
                raise ValueError(
                    "ego_status: got None, expected (B, EGO_STATUS_DIM) features (planner_head.ego_status)"
                )
            ego_x = self.ego_in(ego_status.to(x.dtype))
            if ego_known is not None:
                ego_x = torch.where(ego_known.bool()[:, None], ego_x, unknown_vector(self.unknown_ego, ego_x))
            x = x + ego_x
        if self.route_in is not None:
            if route_target is None or route_mask is None:
                raise ValueError(
                    "route_target: got None, expected (B, P, 2) points and a (B,) mask (route_target=true)"
                )
            x = x + self.route_in(route_target, route_mask).to(x.dtype)
        if self.limit_in is not None:
            if speed_limit is None or limit_mask is None or speed_mps is None:
                raise ValueError(
                    "speed_limit: got None, expected (B,) limits, a (B,) mask and speed_mps (speed_limit=true)"
                )
            x = x + self.limit_in(speed_limit, speed_mps, limit_mask).to(x.dtype)
        if self.junction_in is not None:
            if junction is None or junction_mask is None or speed_mps is None:
                raise ValueError(
                    "junction: got None, expected (B,) distances, a (B,) mask and speed_mps (junction=true)"
                )
            x = x + self.junction_in(junction, speed_mps, junction_mask).to(x.dtype)
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
        speed_logits = self.speed(x) if self.speed is not None else None
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
            arc = speed_mps.to(poses.dtype).clamp(min=0.0)[:, None] * t[None]  # (B, T)
            if self.cfg.prior_along_route and route_target is not None and route_mask is not None:
                points = route_target.to(poses.dtype)
                if self.cfg.route_prior_curve:  # the usable test reads the route points, not the curve's samples
                    usable = route_usable(points, route_mask)
                    poses = poses + route_prior(arc, route_curve(points), route_mask, usable=usable)
                else:
                    poses = poses + route_prior(arc, points, route_mask)
            else:
                poses = poses + torch.stack([arc, torch.zeros_like(arc), torch.zeros_like(arc)], dim=-1)
        if speed_logits is not None and not self.training:
            if speed_mps is None:
                raise ValueError("speed_mps: got None, expected (B,) ego speeds to re-time the path (target_speed)")
            target = self.speed.target_speed(speed_logits, speed_mps, self.cfg.brake_threshold)
            poses = retime(poses, speed_mps, target, self.cfg.speed_ramp_s)
        return HeadOutput(poses, kl, speed_logits)


MIN_ROUTE_SEGMENT_M = 1.0  # shorter first segments (or route points behind the ego) give the straight prior


def route_prior(
    arc: torch.Tensor, points: torch.Tensor, mask: torch.Tensor, usable: torch.Tensor | None = None
) -> torch.Tensor:
    """(B, T) distances along the route, (B, P, 2) route points (ego frame), (B,) mask -> (B, T, 3) poses.

    The poses lie ``arc`` metres along the polyline ego origin -> points[0] -> ... -> points[-1], extended
    along its last segment, with the heading of the segment they are on. Where the mask is False, the
    first point is closer than MIN_ROUTE_SEGMENT_M or not ahead of the ego (x <= 0), the poses lie
    straight ahead (x = arc, y = 0, yaw = 0); a given ``usable`` (B,) replaces that test (for points drawn
    from the route points by ``route_curve``).
    """
    b = points.shape[0]
    verts = torch.cat([torch.zeros(b, 1, 2, dtype=points.dtype, device=points.device), points], dim=1)  # (B, V, 2)
    seg = verts[:, 1:] - verts[:, :-1]  # (B, S, 2)
    seg_len = seg.norm(dim=-1).clamp(min=1e-6)  # (B, S)
    start = torch.cat([torch.zeros_like(seg_len[:, :1]), seg_len.cumsum(1)[:, :-1]], dim=1)  # (B, S)
    # the segment each arc falls on: the last one whose start it has passed (the last extends without end)
    idx = ((arc[:, :, None] >= start[:, None, :]).sum(-1) - 1).clamp(min=0)  # (B, T)
    gather = idx[..., None].expand(-1, -1, 2)
    s0 = torch.gather(start, 1, idx)  # (B, T)
    ln = torch.gather(seg_len, 1, idx)
    unit = torch.gather(seg, 1, gather) / ln[..., None]  # (B, T, 2)
    xy = torch.gather(verts[:, :-1], 1, gather) + unit * (arc - s0)[..., None]
    yaw = torch.atan2(unit[..., 1], unit[..., 0])
    along = torch.cat([xy, yaw[..., None]], dim=-1)
    straight = torch.stack([arc, torch.zeros_like(arc), torch.zeros_like(arc)], dim=-1)
    usable = route_usable(points, mask) if usable is None else usable
    return torch.where(usable[:, None, None], along, straight)


def route_usable(points: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B,) bool: the route points (B, P, 2) can shape a prior: present, the first ahead of the ego (x > 0) and
    at least MIN_ROUTE_SEGMENT_M away."""
    return mask.bool() & (points[:, 0, 0] > 0.0) & (points[:, 0].norm(dim=-1) >= MIN_ROUTE_SEGMENT_M)


CURVE_SAMPLES = 8  # points per span of ``route_curve``


def route_curve(points: torch.Tensor) -> torch.Tensor:
    """(B, P, 2) route points (ego frame) -> (B, P * CURVE_SAMPLES, 2) points on a smooth curve through them.

    A cubic Hermite spline from the ego origin, leaving it along the ego's heading (+x), through each point,
    with Catmull-Rom tangents at the inner points and the last span's direction at the end. Straight spans
    between route points 7.5-27.5 m apart cut the inside of a bend (in a roundabout of 20 m radius by
    1-2 m, into the inner lane); the curve leaves the ego as the lane does. The origin itself is not
    returned (``route_prior`` starts there)."""
    b, p, _ = points.shape
    zero = torch.zeros(b, 1, 2, dtype=points.dtype, device=points.device)
    verts = torch.cat([zero, points], dim=1)  # (B, P + 1, 2)
    first = points[:, 0].norm(dim=-1, keepdim=True)
    start = torch.cat([first, torch.zeros_like(first)], dim=-1)[:, None]  # along +x, as long as the first span
    inner = 0.5 * (verts[:, 2:] - verts[:, :-2])  # Catmull-Rom
    end = verts[:, -1:] - verts[:, -2:-1]
    tangents = torch.cat([start, inner, end], dim=1)  # (B, P + 1, 2)
    t = torch.arange(1, CURVE_SAMPLES + 1, dtype=points.dtype, device=points.device) / CURVE_SAMPLES
    t2, t3 = t * t, t * t * t
    h00, h10, h01, h11 = 2 * t3 - 3 * t2 + 1, t3 - 2 * t2 + t, -2 * t3 + 3 * t2, t3 - t2  # (S,)
    a, b_, ma, mb = verts[:, :-1, None], verts[:, 1:, None], tangents[:, :-1, None], tangents[:, 1:, None]
    w = [h[None, None, :, None] for h in (h00, h10, h01, h11)]
    curve = w[0] * a + w[1] * ma + w[2] * b_ + w[3] * mb  # (B, P, S, 2)
    return curve.reshape(b, p * CURVE_SAMPLES, 2)


def retime(poses: torch.Tensor, speed_mps: torch.Tensor, target_mps: torch.Tensor, ramp_s: float) -> torch.Tensor:
    """Place the waypoints of ``poses`` (B, T, 3) along their own path at a new speed profile.

    The speed goes linearly from ``speed_mps`` (B,) to ``target_mps`` (B,) over ``ramp_s`` seconds and holds;
    the distance travelled by each waypoint's time is integrated by trapezoids, and the pose there
    is read off the polyline ego -> waypoints, extended along its last segment (heading of the segment).
    """
    steps = poses.shape[1]
    t = STEP_DT_S * torch.arange(0, steps + 1, dtype=poses.dtype, device=poses.device)  # (T+1,) from 0
    v0 = speed_mps.to(poses.dtype).clamp(min=0.0)[:, None]
    vt = target_mps.to(poses.dtype).clamp(min=0.0)[:, None]
    frac = (t[None] / max(ramp_s, 1e-6)).clamp(max=1.0)
    v = v0 + (vt - v0) * frac  # (B, T+1)
    arc = (0.5 * (v[:, 1:] + v[:, :-1]) * STEP_DT_S).cumsum(1)  # (B, T)
    keep = torch.ones(poses.shape[0], dtype=torch.bool, device=poses.device)
    return route_prior(arc, poses[..., :2], keep)
