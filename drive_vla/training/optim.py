"""AdamW parameter groups with per-module learning-rate multipliers, and the warmup + cosine schedule."""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn

from drive_vla.training.config import OptimConfig


def _multiplier(name: str, lr_mult: Mapping[str, float]) -> tuple[str, float]:
    """Longest prefix of ``name`` (at a dot boundary) in ``lr_mult`` -> (prefix, factor); ("", 1.0) if none."""
    best = ("", 1.0)
    for prefix, factor in lr_mult.items():
        if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > len(best[0]):
            best = (prefix, float(factor))
    return best


def param_groups(model: nn.Module, cfg: OptimConfig) -> list[dict]:
    """Trainable parameters grouped by (lr multiplier, decayed or not).

    Matrices are decayed; biases, norms and other vectors are not. A prefix in ``cfg.lr_mult`` that
    matches no parameter name raises ValueError (a typo would otherwise silently train at full lr).
    """
    names = [n for n, _ in model.named_parameters()]
    unknown = [p for p in cfg.lr_mult if not any(n == p or n.startswith(p + ".") for n in names)]
    if unknown:
        tops = sorted({n.split(".")[0] for n in names})
        raise ValueError(f"optim.lr_mult: prefixes {unknown} match no parameter, expected names under {tops}")
    groups: dict[tuple[str, bool], dict] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        prefix, factor = _multiplier(name, cfg.lr_mult)
        if factor == 0.0:
            continue
        decay = p.ndim >= 2
        g = groups.setdefault(
            (prefix, decay),
            {
                "params": [],
                "lr": cfg.lr * factor,
                "lr_mult": factor,
                "weight_decay": cfg.weight_decay if decay else 0.0,
                "name": f"{prefix or 'default'}{'' if decay else '.no_decay'}",
            },
        )
        g["params"].append(p)
    if not groups:
        raise ValueError("freeze/lr_mult: got no trainable parameter, expected at least one to optimise")
    return list(groups.values())


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.AdamW:
    """AdamW over ``param_groups``; fused kernels are not requested so CPU and GPU behave alike."""
    return torch.optim.AdamW(param_groups(model, cfg), lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)


def lr_factor(step: int, total_steps: int, cfg: OptimConfig) -> float:
    """Learning-rate factor at optimiser step ``step`` (0-based): linear warmup, then cosine or constant."""
    if cfg.warmup_steps > 0 and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return 1.0
    span = max(1, total_steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    return cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(
    optimizer: torch.optim.Optimizer, total_steps: int, cfg: OptimConfig
) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-step LambdaLR applying ``lr_factor`` to every group (multipliers are kept in the base lrs)."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, total_steps, cfg))
