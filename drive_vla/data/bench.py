"""`drive-vla bench data`: embedded-world steps/s, rendering, dataset writing, and reader samples/s cold vs cached."""

from __future__ import annotations

import argparse
import importlib
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from drive_vla.cli.data import parse_image_size


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataroot", default=None, help="read this dataset instead of generating one")
    parser.add_argument("--version", default="v1.0-embedded", help="dataset version (with --dataroot)")
    parser.add_argument("--scenes", type=int, default=2, help="scenes to generate")
    parser.add_argument("--keyframes", type=int, default=10, help="keyframes per synthetic scene (writer row)")
    parser.add_argument("--image-size", type=parse_image_size, default=(256, 144), help="stored camera WIDTHxHEIGHT")
    parser.add_argument("--read-size", type=parse_image_size, default=(256, 144), help="reader output WIDTHxHEIGHT")
    parser.add_argument("--samples", type=int, default=40, help="at most this many samples per reader pass")
    parser.add_argument("--world-steps", type=int, default=200, help="embedded-world steps to time")
    parser.add_argument("--seed", type=int, default=0)


def _row(name: str, value: float | None, unit: str, n: int, seconds: float, note: str = "") -> dict[str, Any]:
    return {"name": name, "value": value, "unit": unit, "n": n, "seconds": round(seconds, 3), "note": note}


def _sim_rows(args: argparse.Namespace, workdir: Path) -> tuple[list[dict[str, Any]], Path | None]:
    """World steps/s, rendered keyframes/s and make_embedded samples/s through the embedded world's API."""
    try:
        sim_bench = importlib.import_module("drive_vla.sim.bench_api")
    except ImportError as exc:
        note = f"skipped: drive_vla.sim not importable yet ({exc})"
        rows = [
            _row(n, None, u, 0, 0.0, note)
            for n, u in (
                ("world steps", "steps/s"),
                ("rendered keyframes (6 cameras)", "keyframes/s"),
                ("make_embedded writing", "samples/s"),
            )
        ]
        return rows, None
    return sim_bench.data_bench_rows(args, workdir)


def _writer_row(args: argparse.Namespace, out: Path) -> tuple[dict[str, Any], str]:
    """NuScenesWriter alone: random images, CAN bus, two agents per keyframe."""
    from drive_vla import geometry as g
    from drive_vla.data.can_bus import scene_name
    from drive_vla.data.nuscenes_writer import AnnotationRecord, CanRecord, KeyframeRecord, NuScenesWriter, SceneRecord
    from drive_vla.types import CAMERA_NAMES

    w, h = args.image_size
    rng = np.random.default_rng(args.seed)
    intr, extr = g.rig_calibration(w, h)
    base = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    scenes = []
    for s in range(args.scenes):
        kfs = []
        for k in range(args.keyframes):
            x = 100.0 * s + 2.5 * k
            images = {c: np.roll(base, 3 * k + i, axis=1) for i, c in enumerate(CAMERA_NAMES)}
            anns = [
                AnnotationRecord(
                    j, "vehicle.car", (x + 10 + 5 * j, 3.5 * j, 0.8), (1.9, 4.5, 1.6), g.yaw_to_quat(0.0), (5.0, 0.0)
                )
                for j in range(2)
            ]
            kfs.append(
                KeyframeRecord(
                    1_600_000_000_000_000 + 10**9 * s + 500_000 * k,
                    (x, 0.0, 0.0),
                    (1.0, 0.0, 0.0, 0.0),
                    images,
                    anns,
                    CanRecord(5.0, 0.0, 0.3, 0.0),
                )
            )
        scenes.append(SceneRecord(scene_name(s), "bench", kfs, intr, extr))
    t0 = time.perf_counter()
    with NuScenesWriter(out, "v1.0-bench") as writer:
        for scene in scenes:
            writer.add_scene(scene)
        writer.finish({"train": [sc.name for sc in scenes]})
    dt = time.perf_counter() - t0
    n = args.scenes * args.keyframes
    return _row("NuScenesWriter (random images)", n / dt, "samples/s", n, dt, f"{w}x{h} JPEG, 6 cameras"), "v1.0-bench"


def _reader_rows(dataroot: Path, version: str, args: argparse.Namespace, cache: Path) -> list[dict[str, Any]]:
    from drive_vla.data.reader import NuScenesReader

    w, h = args.read_size
    rows = []
    t0 = time.perf_counter()
    reader = NuScenesReader(dataroot, version, image_hw=(h, w), cache_dir=cache)
    t_index = time.perf_counter() - t0
    n = min(len(reader), args.samples)
    rows.append(
        _row("reader index (devkit load)", t_index * 1000, "ms", len(reader), t_index, f"{len(reader)} samples")
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
        rows, sim_root = _sim_rows(args, workdir / "embedded")
        writer_row, bench_version = _writer_row(args, workdir / "written")
        rows.append(writer_row)
        if args.dataroot is not None:
            root, version = Path(args.dataroot), args.version
        elif sim_root is not None:
            root, version = sim_root, args.version
        else:
            root, version = workdir / "written", bench_version
        rows += _reader_rows(root, version, args, workdir / "cache")
        return rows
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
