"""Timing functions of the embedded world for benchmarks: world steps/s, rendered keyframes/s, dataset samples/s.

``drive-vla bench data`` calls ``expert_futures_per_s``; the small functions can be timed on their own. Each
returns a dict with the rate, the count and the seconds it took (wall clock, this process).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from drive_vla.sim.config import DatasetConfig, WorldConfig
from drive_vla.sim.dataset import make_embedded, record_episode, with_keyframes
from drive_vla.sim.embedded import EmbeddedWorld


def world_steps_per_s(
    scenario: str = "intersection", steps: int = 200, seed: int = 0, config: WorldConfig | None = None
) -> dict[str, Any]:
    """Expert-driven world steps per second (no rendering), after ``reset`` (not timed)."""
    world = EmbeddedWorld(config)
    world.reset(scenario, seed)
    t0 = time.perf_counter()
    for _ in range(steps):
        world.step(None)
    dt = time.perf_counter() - t0
    return {"rate": steps / dt, "n": steps, "seconds": dt, "vehicles": len(world.traffic())}


def render_keyframes_per_s(
    scenario: str = "intersection", keyframes: int = 20, image_wh: tuple[int, int] = (256, 144), seed: int = 0
) -> dict[str, Any]:
    """Six-camera renders per second of the world's current state (the world advances one keyframe between renders, untimed)."""
    world = EmbeddedWorld()
    world.reset(scenario, seed)
    world.render(*image_wh)  # static road geometry is built on the first render of a network
    total = 0.0
    for _ in range(keyframes):
        t0 = time.perf_counter()
        world.render(*image_wh)
        total += time.perf_counter() - t0
        for _ in range(world.cfg.keyframe_every):
            world.step(None)
    return {"rate": keyframes / total, "n": keyframes, "seconds": total}


def expert_futures_per_s(
    share: bool, scenario: str = "intersection", keyframes: int = 20, seed: int = 0
) -> dict[str, Any]:
    """Keyframes per second of an expert-driven episode with the dataset's perturbations, each labelled with
    the expert's own future (no cameras): ``share`` one world copy while the episode drives as the expert
    (``ExpertFutures``), else a fresh copy per keyframe."""
    cfg = DatasetConfig()
    world = EmbeddedWorld(cfg.world)
    perturb = (cfg.perturb_prob, cfg.perturb_steer, cfg.perturb_pedal)
    t0 = time.perf_counter()
    record_episode(world, scenario, seed, keyframes, None, perturb, expert_futures=True, share_futures=share)
    dt = time.perf_counter() - t0
    return {"rate": keyframes / dt, "n": keyframes, "seconds": dt}


def dataset_samples_per_s(
    out_dir: str | Path,
    scenes: int = 2,
    keyframes: int = 10,
    image_wh: tuple[int, int] = (256, 144),
    seed: int = 0,
    workers: int = 1,
    version: str = "v1.0-embedded",
) -> dict[str, Any]:
    """``make_embedded`` samples (keyframes) written per second, end to end (simulate, render, label, write)."""
    cfg = with_keyframes(DatasetConfig(), keyframes)
    t0 = time.perf_counter()
    summary = make_embedded(out_dir, scenes, seed, version=version, image_wh=image_wh, workers=workers, config=cfg)
    dt = time.perf_counter() - t0
    return {"rate": summary["samples"] / dt, "n": summary["samples"], "seconds": dt, "summary": summary}
