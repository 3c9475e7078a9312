"""The work inside one DAgger round: the initial dataset, labelled rollouts, the fine-tuning recipe, the suite's score."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from drive_vla.sim.config import DatasetConfig
from drive_vla.suites import DriveSuite
from drive_vla.training.config import DataSource, ModelRef, TrainConfig
from drive_vla.training.dagger_config import DaggerConfig

ROUND_SEED_TAG = 0xDA66E5  # keeps the rollout seeds of a round apart from dataset seeds drawn from the same number


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """torch's CPU thread count set to ``n`` inside the block (0 = unchanged), restored after it."""
    import torch

    before = torch.get_num_threads()
    if n > 0:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def render_wh(cfg: TrainConfig) -> tuple[int, int]:
    """(width, height) the rollouts and the initial dataset render at: the training images' size."""
    h, w = cfg.data.image_hw
    return int(w), int(h)


def make_initial_dataset(cfg: TrainConfig, dataset_cfg: DatasetConfig, out_dir: Path) -> dict:
    """Record ``dagger.initial_scenes`` expert scenes (with the dataset config's noise injection) to ``out_dir``."""
    from drive_vla.sim.dataset import make_embedded, with_keyframes

    d = cfg.dagger
    if d.initial_keyframes:
        dataset_cfg = with_keyframes(dataset_cfg, d.initial_keyframes)
    bar = tqdm(total=d.initial_scenes, desc="round 0: initial scenes", unit="scene")
    try:
        return make_embedded(
            out_dir,
            d.initial_scenes,
            d.initial_seed,
            version=cfg.data.version,
            image_wh=render_wh(cfg),
            scenario_types=d.scenario_types or None,
            workers=d.workers,
            progress=lambda done, total: bar.update(done - bar.n),
            config=dataset_cfg,
            overwrite=True,
        )
    finally:
        bar.close()


def rollout_plan(d: DaggerConfig, round_index: int) -> list[tuple[str, int]]:
    """(scenario, seed) of each rollout episode of a round; training-range seeds only (``training_seed``)."""
    from drive_vla.sim.dataset import scene_plan

    seed = int(np.random.SeedSequence([d.seed, round_index, ROUND_SEED_TAG]).generate_state(1)[0])
    return scene_plan(d.episodes_per_round, seed, d.scenario_types or None)


def collect_round(
    cfg: TrainConfig, dataset_cfg: DatasetConfig, round_index: int, policy_dir: Path, out_dir: Path
) -> dict[str, Any]:
    """Roll out the policy of ``policy_dir`` mixed with the expert, write the labelled scenes to ``out_dir``.

    Returns the round's data summary: beta, episodes, samples_added, how episodes ended, policy share.
    """
    from drive_vla.control import make_controller
    from drive_vla.policy import DrivingPolicy
    from drive_vla.sim.dataset import HELD_OUT_SEEDS
    from drive_vla.sim.embedded import EmbeddedWorld
    from drive_vla.sim.onpolicy import rollout, write_onpolicy_dataset

    d = cfg.dagger
    beta = d.beta(round_index)
    plan = rollout_plan(d, round_index)
    leaked = [s for _, s in plan if s in HELD_OUT_SEEDS]
    if leaked:  # training_seed makes this impossible; a change there must not silently train on test routes
        raise RuntimeError(f"rollout seeds {leaked} fall in HELD_OUT_SEEDS")
    policy = DrivingPolicy.from_pretrained(policy_dir)
    controller = make_controller(d.controller)
    world = EmbeddedWorld(dataset_cfg.world)
    rng = np.random.default_rng(np.random.SeedSequence([d.seed, round_index, ROUND_SEED_TAG, 1]))
    episodes = []
    with torch_threads(d.policy_threads):
        for scenario, seed in tqdm(plan, desc=f"round {round_index}: rollouts (beta {beta:.2f})", unit="episode"):
            episodes.append(
                rollout(
                    world,
                    policy,
                    controller,
                    scenario,
                    seed,
                    beta,
                    rng,
                    d.episode_keyframes,
                    render_wh(cfg),
                    d.max_off_route_m,
                )
            )
    written = write_onpolicy_dataset(
        out_dir, episodes, render_wh(cfg), dataset_cfg.annotation_range_m, version=cfg.data.version
    )
    stats = [e.stats for e in episodes]
    intervals = sum(s["keyframes"] for s in stats)
    ends: dict[str, int] = {}
    for s in stats:
        ends[s["end"]] = ends.get(s["end"], 0) + 1
    return {
        "beta": beta,
        "episodes": len(episodes),
        "samples_added": written["samples"],
        "policy_share": sum(s["policy_intervals"] for s in stats) / intervals if intervals else 0.0,
        "episode_ends": ends,
        "planner_errors": sum(s["planner_errors"] for s in stats),
    }


def round_config(cfg: TrainConfig, initial_root: str, policy_dir: Path, round_roots: list[Path]) -> TrainConfig:
    """The recipe of a later round, on the initial data plus every round's scenes: fine-tuned from
    ``policy_dir``'s weights (``dagger.retrain: finetune``) or the base recipe trained anew (``scratch``)."""
    d = cfg.dagger
    extra = [*cfg.data.extra_train, *(DataSource(str(p), cfg.data.version, "train") for p in round_roots)]
    data = replace(cfg.data, dataroot=initial_root, extra_train=extra)
    if d.retrain == "scratch":
        return replace(cfg, data=data, dagger=DaggerConfig())
    return replace(
        cfg,
        init_from=str(policy_dir),
        model=ModelRef(kind=cfg.model.kind),
        data=data,
        trainer=replace(cfg.trainer, max_epochs=d.finetune_epochs),
        optim=replace(cfg.optim, lr=d.finetune_lr or cfg.optim.lr, warmup_steps=d.finetune_warmup_steps),
        dagger=DaggerConfig(),
    )


def score_on_suite(policy_dir: Path, suite: DriveSuite, controller: str, desc: str, threads: int = 0) -> dict[str, Any]:
    """Drive every route of ``suite`` with the policy (seed 0; torch on ``threads`` CPU threads, 0 = as now):
    driving score, route completion, success (%), collisions and each route's score."""
    import torch

    from drive_vla.suite_driving import drive_policy_on_suite

    threads = threads or torch.get_num_threads()
    return drive_policy_on_suite(policy_dir, suite, seed=0, threads=threads, controller=controller, progress=desc)
