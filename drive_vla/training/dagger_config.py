"""DaggerConfig: the on-policy (DAgger) rounds of a training recipe: rollouts, expert mixing, fine-tuning, scoring."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class DaggerConfig:
    """Rounds of on-policy learning in the embedded world after the base training (round 0).

    Round r >= 1 rolls out round r-1's policy on training-range seeds, the expert driving each keyframe
    interval with probability ``beta0 * decay**r``; every visited keyframe is labelled by the expert
    (its control, meta-action, explanation, and the 3 s it would drive from there); the scenes of all
    rounds so far are added to the training data and the policy is fine-tuned from round r-1's weights
    (``retrain: finetune``) or trained anew with the base recipe's whole schedule on the aggregate, as in
    Ross et al.'s DAgger (``retrain: scratch``).

    Attributes:
        rounds: DAgger rounds after round 0 (0 = plain one-stage training, this section unused).
        initial_scenes: scenes of the initial embedded dataset the recipe makes itself under
            ``<out>/round_0/data`` (0 = train round 0 on ``data.dataroot``).
        initial_seed: seed of that dataset (scenario order, episode seeds, split).
        initial_keyframes: keyframes per initial scene (0 = the dataset config's ``keyframes_per_scene``).
        dataset_config: DatasetConfig YAML for the initial dataset and the world of the rollouts.
        workers: processes recording the initial dataset.
        episodes_per_round: rollout episodes per round (one scene each).
        episode_keyframes: keyframes an episode runs at most (2 Hz); it stops earlier at a collision,
            beyond ``max_off_route_m`` from the route, or when the world ends it (goal, timeout).
        max_off_route_m: "far off route" for the early stop, metres from the route's centre line.
        beta0: expert share at round 0 of the schedule; round r uses ``beta0 * decay**r``.
        decay: per-round factor on the expert share.
        seed: seeds the rollout scenarios and the expert/policy draws (with the round number).
        scenario_types: scenario names of the rollouts ([] = all, balanced).
        retrain: how a round learns from the aggregate: "finetune" (round r-1's weights, ``finetune_*``
            below) or "scratch" (the recipe's own initialisation, epochs and learning rate; the
            ``finetune_*`` settings are unused).
        finetune_epochs: epochs of each round's fine-tuning.
        finetune_lr: peak learning rate of the fine-tuning (0 = ``optim.lr``).
        finetune_warmup_steps: warmup of the fine-tuning, optimiser steps.
        controller: how the policy's plans become controls in rollouts and scoring ("pid" or "tokens").
        suite: closed-loop suite scored after every round (a name under configs/eval or a YAML path).
        policy_threads: torch CPU threads while the policy drives (rollouts, the suite); it plans one
            observation at a time, which the tiny model does fastest on one thread (12 ms per plan on a
            shared 2-core machine where 2 threads took 270-830 ms). 0 = leave torch's setting.
    """

    rounds: int = 0
    initial_scenes: int = 0
    initial_seed: int = 0
    initial_keyframes: int = 0
    dataset_config: str = "configs/sim/dataset.yaml"
    workers: int = 1
    episodes_per_round: int = 8
    episode_keyframes: int = 40
    max_off_route_m: float = 6.0
    beta0: float = 1.0
    decay: float = 0.5
    seed: int = 1
    scenario_types: list[str] = field(default_factory=list)
    retrain: str = "finetune"
    finetune_epochs: int = 2
    finetune_lr: float = 0.0
    finetune_warmup_steps: int = 10
    controller: str = "pid"
    suite: str = "smoke"
    policy_threads: int = 1

    def __post_init__(self) -> None:
        for name in ("rounds", "initial_scenes", "initial_keyframes", "finetune_warmup_steps", "policy_threads"):
            if getattr(self, name) < 0:
                raise ValueError(f"dagger.{name}: got {getattr(self, name)!r}, expected an integer >= 0")
        for name in ("episodes_per_round", "episode_keyframes", "finetune_epochs", "workers"):
            if getattr(self, name) < 1:
                raise ValueError(f"dagger.{name}: got {getattr(self, name)!r}, expected an integer >= 1")
        if not 0.0 <= self.beta0 <= 1.0:
            raise ValueError(f"dagger.beta0: got {self.beta0!r}, expected a probability in [0, 1]")
        if not 0.0 <= self.decay <= 1.0:
            raise ValueError(f"dagger.decay: got {self.decay!r}, expected a factor in [0, 1]")
        if self.max_off_route_m <= 0:
            raise ValueError(f"dagger.max_off_route_m: got {self.max_off_route_m!r}, expected > 0 metres")
        if self.finetune_lr < 0:
            raise ValueError(f"dagger.finetune_lr: got {self.finetune_lr!r}, expected >= 0 (0 = optim.lr)")
        if self.retrain not in ("finetune", "scratch"):
            raise ValueError(f"dagger.retrain: got {self.retrain!r}, expected 'finetune' or 'scratch'")
        if self.controller not in ("pid", "tokens"):
            raise ValueError(f"dagger.controller: got {self.controller!r}, expected 'pid' or 'tokens'")
        if not self.suite:
            raise ValueError(
                "dagger.suite: got '', expected a suite name (configs/eval/closed_loop_<name>.yaml) or path"
            )

    def beta(self, round_index: int) -> float:
        """The expert's share of keyframe intervals in round ``round_index``."""
        return float(self.beta0 * self.decay**round_index)
