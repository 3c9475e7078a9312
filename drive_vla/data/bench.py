"""`drive-vla bench data`: embedded-world steps/s, rendering, dataset writing, and reader samples/s cold vs cached."""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from drive_vla.cli.args import parse_image_wh

BENCH_VERSION = "v1.0-bench"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataroot", default=None, help="reader rows on this dataset (default: write 1600x900 frames)")
    parser.add_argument("--version", default="v1.0-embedded", help="dataset version (with --dataroot)")
    parser.add_argument("--scenes", type=int, default=2, help="scenes to generate")
    parser.add_argument("--keyframes", type=int, default=10, help="keyframes per synthetic scene (writer row)")
    parser.add_argument("--image-size", type=parse_image_wh, default=(256, 144), help="stored camera WIDTHxHEIGHT")
    parser.add_argument("--read-size", type=parse_image_wh, default=(256, 144), help="reader output WIDTHxHEIGHT")
    parser.add_argument("--samples", type=int, default=20, help="samples per reader pass (1600x900 keyframes written)")
    parser.add_argument("--world-steps", type=int, default=200, help="embedded-world steps to time")
    parser.add_argument("--seed", type=int, default=0)


def _row(name: str, value: float | None, unit: str, n: int, seconds: float, note: str = "") -> dict[str, Any]:
    return {"name": name, "value": value, "unit": unit, "n": n, "seconds": round(seconds, 3), "note": note}


def _skipped(name: str, unit: str, why: str) -> dict[str, Any]:
    return _row(name, None, unit, 0, 0.0, f"skipped: {why}")


def _sim_rows(args: argparse.Namespace, out: Path) -> tuple[list[dict[str, Any]], Path | None]:
    """World steps/s, rendered keyframes/s and make_embedded samples/s through the embedded world's public API."""
    rows: list[dict[str, Any]] = []
    w, h = args.image_size
    try:
        from drive_vla.sim.embedded import EmbeddedWorld
    except ImportError as exc:
        why = f"drive_vla.sim not importable yet ({exc})"
        rows += [
            _skipped("world steps", "steps/s", why),
            _skipped("rendered keyframes (6 cameras)", "keyframes/s", why),
        ]
    else:
        world = EmbeddedWorld()
        world.reset(world.scenario_names()[0], seed=args.seed)
        t0 = time.perf_counter()
        for _ in range(args.world_steps):
            world.step(None)
        dt = time.perf_counter() - t0
        rows.append(
            _row(
                "world steps",
                args.world_steps / dt,
                "steps/s",
                args.world_steps,
                dt,
                f"{world.scenario_names()[0]}, expert driving",
            )
        )
        n = max(1, args.world_steps // 10)
        t0 = time.perf_counter()
        for _ in range(n):
            world.step(None)
            world.render(w, h)
        dt = time.perf_counter() - t0
        rows.append(
            _row("rendered keyframes (6 cameras)", n / dt, "keyframes/s", n, dt, f"{w}x{h}, includes one world step")
        )
    try:
        from drive_vla.sim.dataset import make_embedded
    except ImportError as exc:
        rows.append(_skipped("make_embedded writing", "samples/s", f"drive_vla.sim.dataset not importable yet ({exc})"))
        return rows, None
    t0 = time.perf_counter()
    make_embedded(out, args.scenes, args.seed, version=args.version, image_wh=(w, h), workers=1)
    dt = time.perf_counter() - t0
    n = len(json.loads((out / args.version / "sample.json").read_text()))
    rows.append(_row("make_embedded writing", n / dt, "samples/s", n, dt, f"{args.scenes} scenes, {w}x{h}, 1 worker"))
    from drive_vla.sim.bench_api import expert_futures_per_s

    kf = 2 * args.keyframes
    fresh = expert_futures_per_s(False, "intersection", kf, args.seed)
    shared = expert_futures_per_s(True, "intersection", kf, args.seed)
    note = f"intersection, {kf} keyframes, perturbed, no cameras"
    rows.append(
        _row("expert futures, a world copy per keyframe", fresh["rate"], "keyframes/s", kf, fresh["seconds"], note)
    )
    ratio = shared["rate"] / fresh["rate"]
    rows.append(
        _row(
            "expert futures, one shared copy",
            shared["rate"],
            "keyframes/s",
            kf,
            shared["seconds"],
            f"{ratio:.2f}x a copy per keyframe",
        )
    )
    return rows, out


def _write_dataset(out: Path, scenes: int, keyframes: int, image_wh: tuple[int, int], seed: int) -> tuple[int, float]:
    """Time NuScenesWriter alone on smooth random images (JPEG sizes like camera frames), CAN bus, two agents."""
    import cv2

    from drive_vla import geometry as g
    from drive_vla.data.can_bus import scene_name
    from drive_vla.data.nuscenes_writer import AnnotationRecord, CanRecord, KeyframeRecord, NuScenesWriter, SceneRecord
    from drive_vla.types import CAMERA_NAMES

    w, h = image_wh
    rng = np.random.default_rng(seed)
    intr, extr = g.rig_calibration(w, h)
    base = cv2.resize(rng.integers(0, 256, size=(18, 32, 3), dtype=np.uint8), (w, h), interpolation=cv2.INTER_CUBIC)
    records = []
    for s in range(scenes):
        kfs = []
        for k in range(keyframes):
            x = 100.0 * s + 2.5 * k
            images = {c: np.roll(base, 3 * k + 40 * i, axis=1) for i, c in enumerate(CAMERA_NAMES)}
            anns = [
                AnnotationRecord(
                    j, "vehicle.car", (x + 10 + 5 * j, 3.5 * j, 0.8), (1.9, 4.5, 1.6), g.yaw_to_quat(0.0), (5.0, 0.0)
                )
                for j in range(2)
            ]
            t_us = 1_600_000_000_000_000 + 10**9 * s + 500_000 * k
            kfs.append(
                KeyframeRecord(t_us, (x, 0.0, 0.0), (1.0, 0.0, 0.0, 0.0), images, anns, CanRecord(5.0, 0.0, 0.3, 0.0))
            )
        records.append(SceneRecord(scene_name(s), "bench", kfs, intr, extr))
    t0 = time.perf_counter()
    with NuScenesWriter(out, BENCH_VERSION) as writer:
        for scene in records:
            writer.add_scene(scene)
        writer.finish({"train": [sc.name for sc in records]})
    return scenes * keyframes, time.perf_counter() - t0


def _reader_rows(dataroot: Path, version: str, args: argparse.Namespace, cache: Path) -> list[dict[str, Any]]:
    import nuscenes.nuscenes  # noqa: F401  (import time is not part of the index row)

    from drive_vla.data.reader import NuScenesReader

    w, h = args.read_size
    rows = []
    t0 = time.perf_counter()
    reader = NuScenesReader(dataroot, version, image_hw=(h, w), cache_dir=cache)
    t_index = time.perf_counter() - t0
    n = min(len(reader), args.samples)
    rows.append(
        _row("reader index (devkit load)", t_index * 1000, "ms", len(reader), t_index, "devkit tables + CAN bus")
    )
    for name in ("reader cold (JPEG decode, fills cache)", "reader from cache"):
        t0 = time.perf_counter()
        for i in range(n):
            reader[i]
        dt = time.perf_counter() - t0
        rows.append(_row(name, n / dt, "samples/s", n, dt, f"-> {w}x{h}"))
    t0 = time.perf_counter()
    again = NuScenesReader(dataroot, version, image_hw=(h, w), cache_dir=cache)
    dt = time.perf_counter() - t0
    rows.append(_row("reader index from cache", dt * 1000, "ms", len(again), dt, "no devkit tables read"))
    t0 = time.perf_counter()
    trajs = again.trajectories()
    dt = time.perf_counter() - t0
    rows.append(_row("reader.trajectories()", len(trajs) / max(dt, 1e-9), "samples/s", len(trajs), dt, "no images"))
    return rows


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    workdir = Path(tempfile.mkdtemp(prefix="drive_vla_bench_data_"))
    try:
        rows, _ = _sim_rows(args, workdir / "embedded")
        n, dt = _write_dataset(workdir / "written", args.scenes, args.keyframes, args.image_size, args.seed)
        note = f"{args.image_size[0]}x{args.image_size[1]} JPEG x 6 cameras, CAN bus"
        rows.append(_row("NuScenesWriter (synthetic images)", n / dt, "samples/s", n, dt, note))
        if args.dataroot is not None:
            root, version = Path(args.dataroot), args.version
        else:
            # reader rows on nuScenes-size JPEGs (1600x900), resized to --read-size
            root, version = workdir / "fullsize", BENCH_VERSION
            n, dt = _write_dataset(root, 1, args.samples, (1600, 900), args.seed)
            rows.append(
                _row("NuScenesWriter (synthetic images)", n / dt, "samples/s", n, dt, "1600x900 JPEG x 6 cameras")
            )
        rows += _reader_rows(root, version, args, workdir / "cache")
        return rows
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
