"""Which network a recipe trains: resolve its config (file + inline, or a previous stage's policy) and build it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from drive_vla.config import ConfigError, from_dict, read_yaml, to_dict
from drive_vla.training.config import TrainConfig, deep_merge, resolve_path
from drive_vla.types import Trajectory


@dataclass
class ResolvedModel:
    """The model identity of a run, known before anything heavy is built.

    Attributes:
        kind: "vla" or "ego_mlp".
        config: the typed model config (ModelConfig or EgoMLPConfig).
        policy: the loaded policy when the run starts from ``init_from``, else None (built later).
    """

    kind: str
    config: Any
    policy: Any = None

    @property
    def config_dict(self) -> dict[str, Any]:
        return to_dict(self.config)


def _config_class(kind: str) -> type:
    if kind == "vla":
        from drive_vla.model.config import ModelConfig

        return ModelConfig
    from drive_vla.baselines.ego_mlp import EgoMLPConfig

    return EgoMLPConfig


def resolve_model(cfg: TrainConfig) -> ResolvedModel:
    """Model config from ``init_from`` (loading that policy) or from ``model.path`` + ``model.overrides``.

    Raises ConfigError naming the bad key for unknown or mistyped model fields.
    """
    kind = cfg.model.kind
    if cfg.init_from:
        src = resolve_path(cfg.init_from)
        if not src.is_dir():
            raise ConfigError(f"init_from: got {cfg.init_from!r}, expected an exported policy directory")
        if kind == "vla":
            from drive_vla.policy import DrivingPolicy

            policy = DrivingPolicy.from_pretrained(src)
            return ResolvedModel(kind, policy.config, policy)
        from drive_vla.baselines.ego_mlp import load_ego_mlp

        policy = load_ego_mlp(src).train()
        return ResolvedModel(kind, policy.config, policy)
    cls = _config_class(kind)
    data = read_yaml(resolve_path(cfg.model.path)) if cfg.model.path else {}
    merged = deep_merge(to_dict(cls()), deep_merge(data, dict(cfg.model.overrides)))
    try:
        config = from_dict(cls, merged)
    except ConfigError as exc:
        where = cfg.model.path or "model.overrides"
        raise ConfigError(f"model ({where}): {exc}") from exc
    return ResolvedModel(kind, config)


def build_policy(
    resolved: ResolvedModel, fit_trajectories: Sequence[Trajectory] | None, fit_texts: Sequence[str] | None = None
) -> Any:
    """The policy object (``save_pretrained``-able) of a run; reuses the ``init_from`` policy when there is one.

    Args:
        resolved: the run's model identity.
        fit_trajectories: training plans that fit the VLA's action tokenizer.
        fit_texts: training texts that fit a "corpus" text tokenizer (``lm.text_tokenizer``).
    """
    if resolved.policy is not None:
        return resolved.policy
    if resolved.kind == "vla":
        from drive_vla.policy import DrivingPolicy

        return DrivingPolicy.build(
            resolved.config,
            fit_trajectories=list(fit_trajectories or []) or None,
            fit_texts=None if fit_texts is None else list(fit_texts),
        )
    from drive_vla.baselines.ego_mlp import EgoMLPPlanner

    return EgoMLPPlanner(resolved.config)


def network_of(policy: Any) -> nn.Module:
    """The trainable nn.Module of a policy: ``policy.model`` for the VLA, the planner itself for the ego MLP."""
    net = policy if isinstance(policy, nn.Module) and hasattr(policy, "losses") else getattr(policy, "model", None)
    if not isinstance(net, nn.Module) or not hasattr(net, "losses") or not hasattr(net, "plan"):
        raise ValueError(f"policy: got {type(policy).__name__}, expected a model with losses(batch) and plan(batch)")
    return net
