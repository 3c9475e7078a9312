"""`drive-vla data`: make an embedded nuScenes-format dataset, or inspect any nuScenes-format dataset."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from drive_vla.cli.args import parse_image_wh


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="COMMAND", required=True)
    make = sub.add_parser("make-embedded", help="generate a nuScenes-format dataset in the embedded world")
    make.add_argument("--out", default="datasets/embedded", help="output dataroot (must not hold another dataset)")
    make.add_argument("--scenes", type=int, default=10, help="number of scenes")
    make.add_argument("--seed", type=int, default=0, help="random seed")
    make.add_argument("--version", default="v1.0-embedded", help="table folder name")
    make.add_argument("--image-size", type=parse_image_wh, default=(256, 144), help="camera WIDTHxHEIGHT")
    make.add_argument("--workers", type=int, default=1, help="worker processes")
    make.add_argument("--keyframes", type=int, default=None, help="keyframes per scene (default: the sim config's)")
    make.add_argument("--overwrite", action="store_true", help="replace an existing dataset of the same version")

    insp = sub.add_parser("inspect", help="print counts and draw one sample (cameras with GT path and boxes, BEV)")
    insp.add_argument("--dataroot", required=True, help="folder holding <version>/, samples/ and can_bus/")
    insp.add_argument("--version", required=True, help="e.g. v1.0-mini or v1.0-embedded")
    insp.add_argument("--split", default=None, help="split to read (default: all scenes)")
    insp.add_argument("--sample", default=None, help="sample token to draw (default: the first sample)")
    insp.add_argument("--out", default=None, help="picture to write (.png/.jpg); nothing drawn if omitted")


def _make_embedded(args: argparse.Namespace) -> int:
    if args.scenes < 1:
        print(f"--scenes: got {args.scenes}, expected >= 1", file=sys.stderr)
        return 2
    try:
        from drive_vla.sim.config import DatasetConfig
        from drive_vla.sim.dataset import make_embedded
    except ImportError as exc:
        print(f"drive-vla data make-embedded: the embedded world is not available ({exc})", file=sys.stderr)
        return 2

    def progress(done: int, total: int) -> None:
        print(f"  scene {done}/{total}", flush=True)

    try:
        config = None if args.keyframes is None else DatasetConfig(keyframes_per_scene=args.keyframes)
        summary = make_embedded(
            Path(args.out),
            args.scenes,
            args.seed,
            version=args.version,
            image_wh=args.image_size,
            workers=args.workers,
            progress=progress,
            config=config,
            overwrite=args.overwrite,
        )
    except ValueError as exc:
        print(f"drive-vla data make-embedded: {exc}", file=sys.stderr)
        return 2
    splits = ", ".join(f"{k} {v}" for k, v in summary.get("splits", {}).items())
    print(
        f"wrote {summary.get('scenes', args.scenes)} scenes, {summary.get('samples', '?')} samples ({args.version}; "
        f"splits: {splits}) to {args.out} in {summary.get('seconds', 0.0):.1f} s"
    )
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from drive_vla.data.reader import NuScenesReader
    from drive_vla.data.splits import available_splits

    try:
        reader = NuScenesReader(args.dataroot, args.version, split=args.split)
    except ValueError as exc:
        print(f"drive-vla data inspect: {exc}", file=sys.stderr)
        return 2
    stats = reader.stats()
    print(f"dataset {args.dataroot} version {args.version} split {args.split or '(all scenes)'}")
    for key in ("scenes", "samples", "annotations", "samples_with_labels", "samples_with_qa"):
        print(f"  {key:<20} {stats[key]}")
    print(f"  {'can_bus':<20} {'present' if stats['can_bus'] else 'absent'} ({stats['samples_with_can']} samples)")
    print(f"  {'labels':<20} {'present' if stats['labels'] else 'absent'}")
    present = set(reader.scenes)
    for name, scenes in sorted(available_splits(args.dataroot, args.version).items()):
        n = sum(s in present for s in scenes)
        if n or args.version not in ("v1.0-mini", "v1.0-trainval", "v1.0-test"):
            print(f"  split {name:<14} {n} scenes here")
    if args.out is None:
        return 0
    if not len(reader):
        print("drive-vla data inspect: no sample to draw", file=sys.stderr)
        return 2
    from drive_vla.data.visualize import render_sample, save_picture

    try:
        i = 0 if args.sample is None else reader.position(args.sample)
    except KeyError as exc:
        print(f"drive-vla data inspect: --sample {exc}", file=sys.stderr)
        return 2
    sample = reader[i]
    save_picture(render_sample(sample, reader.boxes(i)), args.out)
    print(
        f"sample {reader.tokens[i]} ({sample.meta.scene} #{sample.meta.index_in_scene}, {sample.observation.command.name}) -> {args.out}"
    )
    return 0


def run(args: argparse.Namespace) -> int:
    if args.data_command == "make-embedded":
        return _make_embedded(args)
    return _inspect(args)
