"""Timing functions of the embedded world for benchmarks: world steps/s, rendered keyframes/s, dataset samples/s.

``drive-vla bench data`` calls ``data_bench_rows``; the small functions can be timed on their own. Each
returns a dict with the rate, the count and the seconds it took (wall clock, this process).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from drive_vla.sim.config import DatasetConfig, WorldConfig
from drive_vla.sim.dataset import make_embedded, with_keyframes
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


def _row(name: str, result: dict[str, Any], unit: str, note: str) -> dict[str, Any]:
    return {
        "name": name,
        "value": result["rate"],
        "unit": unit,
        "n": result["n"],
        "seconds": round(result["seconds"], 3),
        "note": note,
    }


def data_bench_rows(args: argparse.Namespace, workdir: Path) -> tuple[list[dict[str, Any]], Path]:
    """Rows for ``drive-vla bench data`` (uses args.world_steps, image_size, scenes, keyframes, seed, version).

    Returns the rows and the dataroot of the dataset it generated (for the reader rows).
    """
    w, h = args.image_size
    steps = world_steps_per_s("intersection", args.world_steps, args.seed)
    render = render_keyframes_per_s("intersection", 10, (w, h), args.seed)
    out = Path(workdir)
    data = dataset_samples_per_s(out, args.scenes, args.keyframes, (w, h), args.seed, 1, args.version)
    rows = [
        _row(
            "world steps", steps, "steps/s", f"intersection, expert driving, {steps['vehicles']} vehicles, no cameras"
        ),
        _row("rendered keyframes (6 cameras)", render, "keyframes/s", f"{w}x{h}"),
        _row(
            "make_embedded writing",
            data,
            "samples/s",
            f"{args.scenes} scenes x {args.keyframes} keyframes, {w}x{h}, 1 worker",
        ),
    ]
    return rows, out
