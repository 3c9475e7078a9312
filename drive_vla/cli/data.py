"""`drive-vla data`: make an embedded nuScenes-format dataset, inspect any nuScenes-format dataset, check a QA file."""

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
    make.add_argument(
        "--val-fraction", type=float, default=None, help="share of scenes in the val split (default: the sim's, 0.2)"
    )
    make.add_argument(
        "--obstacle-scenes",
        type=float,
        default=None,
        help="share of training scenes also written with a car standing on the route ahead at every keyframe "
        "(default: the sim config's, 0)",
    )
    make.add_argument(
        "--obstacle-gap",
        type=float,
        nargs=2,
        metavar=("MIN_M", "MAX_M"),
        default=None,
        help="range of the standing car's gap ahead of the ego's front bumper, metres (default: the sim config's, 4 50)",
    )
    make.add_argument(
        "--obstacle-yaw",
        type=float,
        default=None,
        metavar="DEG",
        help="turn each standing car from its lane by up to this many degrees either way; 90 includes cars "
        "standing across the route (default: the sim config's, 0)",
    )
    make.add_argument(
        "--obstacle-no-floor",
        action="store_true",
        help="draw the standing car's gap from --obstacle-gap as given, also closer than the expert can stop "
        "(data for the perception stage, whose labels are free distances; the expert's plans there end in a crash)",
    )
    make.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="recording setting (drive_vla.sim.config.DatasetConfig, dotted), e.g. world.expert.max_cruise_mps=20; "
        "the flags above take precedence",
    )

    insp = sub.add_parser("inspect", help="print counts and draw one sample (cameras with GT path and boxes, BEV)")
    insp.add_argument("--dataroot", required=True, help="folder holding <version>/, samples/ and can_bus/")
    insp.add_argument("--version", required=True, help="e.g. v1.0-mini or v1.0-embedded")
    insp.add_argument("--split", default=None, help="split to read (default: all scenes)")
    insp.add_argument("--sample", default=None, help="sample token to draw (default: the first sample)")
    insp.add_argument("--out", default=None, help="picture to write (.png/.jpg); nothing drawn if omitted")

    qa = sub.add_parser("qa-stats", help="validate a DriveLM v1.1 or nuScenes-QA file and count its QA")
    qa.add_argument("--qa-file", required=True, help="DriveLM (train, val questions-only) or nuScenes-QA JSON")
    qa.add_argument("--dataroot", default=None, help="nuScenes-format data root to check the frames against")
    qa.add_argument("--version", default=None, help="dataset version folder (with --dataroot), e.g. v1.0-trainval")


def _make_embedded(args: argparse.Namespace) -> int:
    if args.scenes < 1:
        print(f"--scenes: got {args.scenes}, expected >= 1", file=sys.stderr)
        return 2
    try:
        from drive_vla.config import load_config
        from drive_vla.sim.config import DatasetConfig
        from drive_vla.sim.dataset import make_embedded
    except ImportError as exc:
        print(f"drive-vla data make-embedded: the embedded world is not available ({exc})", file=sys.stderr)
        return 2

    def progress(done: int, total: int) -> None:
        print(f"  scene {done}/{total}", flush=True)

    try:
        overrides = list(args.overrides)
        if args.keyframes is not None:
            overrides.append(f"keyframes_per_scene={args.keyframes}")
        if args.obstacle_scenes is not None:
            overrides.append(f"obstacle_scene_fraction={args.obstacle_scenes}")
        if args.obstacle_gap is not None:
            overrides.append(f"obstacle_gap_m=[{args.obstacle_gap[0]}, {args.obstacle_gap[1]}]")
        if args.obstacle_yaw is not None:
            overrides.append(f"obstacle_yaw_deg={args.obstacle_yaw}")
        if args.obstacle_no_floor:
            overrides.append("obstacle_stopping_floor=false")
        if args.val_fraction is not None:
            overrides.append(f"val_fraction={args.val_fraction}")
        config = load_config(DatasetConfig, overrides=overrides) if overrides else None
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
    obstacles = summary.get("obstacle_scenes", 0)
    extra = f", {obstacles} of them with a standing car ahead" if obstacles else ""
    print(
        f"wrote {summary.get('scenes', args.scenes)} scenes{extra}, {summary.get('samples', '?')} samples "
        f"({args.version}; splits: {splits}) to {args.out} in {summary.get('seconds', 0.0):.1f} s"
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


def _dataset_samples(dataroot: str, version: str) -> dict[str, str]:
    """sample token -> scene token of every sample of a version (the sample table alone, no devkit)."""
    import json

    from drive_vla.data.index import DatasetError, check_dataset_files

    table = check_dataset_files(dataroot, version) / "sample.json"
    try:
        rows = json.loads(table.read_text())
        return {r["token"]: r["scene_token"] for r in rows}
    except (json.JSONDecodeError, TypeError, KeyError) as exc:
        raise DatasetError(f"table file {table}: not a nuScenes sample table ({type(exc).__name__}: {exc})") from None


def _qa_stats(args: argparse.Namespace) -> int:
    from drive_vla.data.index import check_qa_frames
    from drive_vla.data.qa_formats import load_qa_file

    if (args.dataroot is None) != (args.version is None):
        print("drive-vla data qa-stats: give --dataroot and --version together", file=sys.stderr)
        return 2
    try:
        qa = load_qa_file(args.qa_file)
        missing: list[str] | None = None
        if args.dataroot is not None:
            samples = _dataset_samples(args.dataroot, args.version)
            missing = check_qa_frames(qa, samples, f"{args.dataroot} {args.version}")
    except ValueError as exc:
        print(f"drive-vla data qa-stats: {exc}", file=sys.stderr)
        return 2
    frames = qa.frames.values()
    print(f"qa file {args.qa_file} ({qa.layout}{'' if qa.has_answers else ', questions only'})")
    print(f"  {'scenes':<22} {len(qa.scenes)}")
    print(f"  {'frames':<22} {len(qa.frames)}")
    print(f"  {'pairs':<22} {qa.num_pairs}")
    for kind, n in qa.pairs_by_kind().items():
        print(f"    {kind:<20} {n}")
    tags: dict[int, int] = {}
    for f in frames:
        for p in f.pairs:
            for t in p.tags:
                tags[t] = tags.get(t, 0) + 1
    if tags:
        print(f"  {'pairs by tag':<22} " + ", ".join(f"{t}: {tags[t]}" for t in sorted(tags)))
    if qa.layout == "drivelm":
        print(f"  {'key objects (c-tags)':<22} {sum(len(f.key_object_infos) for f in frames)}")
        print(f"  {'frames with images':<22} {sum(bool(f.image_paths) for f in frames)}")
        behavior = sum(any(p.kind == "behavior" for p in f.pairs) for f in frames)
        print(f"  {'frames with behavior':<22} {behavior} (explanation and meta-action labels)")
    if missing is not None:
        print(f"  {'missing from dataset':<22} {len(missing)} of {len(qa.frames)} frames not in {args.version}")
        for token in missing[:10]:
            print(f"    {qa.frames[token].scene_token or '?'} {token}")
        if len(missing) > 10:
            print(f"    ... {len(missing) - 10} more")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.data_command == "make-embedded":
        return _make_embedded(args)
    if args.data_command == "qa-stats":
        return _qa_stats(args)
    return _inspect(args)
