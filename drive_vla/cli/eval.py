"""`drive-vla eval open-loop`: L2 and collision of policies and baselines (ST-P3, UniAD and OpenDriveVLA protocols)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from drive_vla.cli.args import parse_image_wh


def _image_size(text: str) -> tuple[int, int]:
    """'WxH' -> (H, W), the reader's order."""
    w, h = parse_image_wh(text)
    return h, w


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="mode", metavar="MODE", required=True)
    p = sub.add_parser("open-loop", help="open-loop L2 / collision on a nuScenes-format split")
    p.add_argument("--policy", action="append", default=[], metavar="DIR", help="saved DrivingPolicy (repeatable)")
    p.add_argument(
        "--baseline",
        action="append",
        default=[],
        metavar="NAME[=PATH]",
        help="baseline planner, e.g. constant_velocity or ego_mlp=runs/ego_mlp (repeatable)",
    )
    p.add_argument("--dataroot", required=True, help="nuScenes-format data root")
    p.add_argument("--version", default="v1.0-mini", help="dataset version folder (default v1.0-mini)")
    p.add_argument("--split", default="val", help="split name (default val)")
    p.add_argument(
        "--protocol",
        choices=("stp3", "uniad", "odv", "all"),
        default="all",
        help="metric protocol(s); odv: both OpenDriveVLA tables",
    )
    p.add_argument("--out", required=True, help="output folder for metrics.json, report.md and plots")
    p.add_argument("--max-samples", type=int, default=None, help="evaluate the first N samples only")
    p.add_argument("--image-size", type=_image_size, default=None, metavar="WxH", help="resize camera images")
    p.add_argument("--batch-size", type=int, default=8, help="observations per predict_batch call")
    p.add_argument("--cache-dir", default=None, help="reader cache folder")
    p.add_argument("--explain", action="store_true", help="also ask policies for explanations (slow)")
    p.add_argument("--panels", type=int, default=9, help="BEV panels in bev.png")
    p.add_argument(
        "--quantize",
        action="append",
        default=[],
        metavar="MODE",
        help="also evaluate every --policy with these weights, e.g. int8 (named policy:DIR+int8; repeatable)",
    )
    from drive_vla.cli import eval_qa

    eval_qa.add_parser(sub)


def _planners(args: argparse.Namespace) -> dict:
    """Named planners from --baseline and --policy; names are unique ("baseline:NAME", "policy:DIR")."""
    planners: dict = {}

    def add(key: str, planner: object) -> None:
        unique, i = key, 2
        while unique in planners:
            unique, i = f"{key}#{i}", i + 1
        planners[unique] = planner

    for spec in args.baseline:
        from drive_vla.baselines import make_baseline

        name, _, path = spec.partition("=")
        add(f"baseline:{name}", make_baseline(name, path or None))
    from drive_vla.model.quantize import check_quantize

    for mode in args.quantize:
        check_quantize(mode, "cpu", "--quantize")
    for d in args.policy:
        from drive_vla.policy import DrivingPolicy

        add(f"policy:{Path(d).name or d}", DrivingPolicy.from_pretrained(d))
        for mode in args.quantize:
            add(f"policy:{Path(d).name or d}+{mode}", DrivingPolicy.from_pretrained(d, quantize=mode))
    return planners


def run(args: argparse.Namespace) -> int:
    if args.mode == "qa":
        from drive_vla.cli import eval_qa

        return eval_qa.run(args)
    from drive_vla.eval.openloop import NoValidSamplesError, compare_report, run_openloop
    from drive_vla.eval.plots import plot_bev_grid, plot_l2_per_horizon
    from drive_vla.eval.report import format_report, write_metrics_json

    if not args.policy and not args.baseline:
        print("drive-vla eval open-loop: give at least one --policy DIR or --baseline NAME", file=sys.stderr)
        return 2
    try:
        planners = _planners(args)
        from drive_vla.data.reader import NuScenesReader

        reader = NuScenesReader(
            args.dataroot, args.version, split=args.split, image_hw=args.image_size, cache_dir=args.cache_dir
        )

        def progress(done: int, total: int) -> None:
            print(f"\r{done}/{total} samples", end="", file=sys.stderr, flush=True)

        run_ = run_openloop(planners, reader, args.batch_size, args.max_samples, args.explain, progress=progress)
        print(file=sys.stderr)
        report = compare_report(run_, args.protocol)
    except (ValueError, FileNotFoundError, NoValidSamplesError) as exc:
        print(f"drive-vla eval open-loop: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    text = format_report(report)
    print(text)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.md").write_text(text + "\n")
    write_metrics_json(report, out / "metrics.json")
    plot_bev_grid(run_, out / "bev.png", num_panels=args.panels)
    if any(
        isinstance(r.get(p), dict)
        for r in report["models"].values()
        for p in ("stp3", "uniad", "odv_uniad", "odv_stp3")
    ):
        plot_l2_per_horizon(report, out / "l2_per_horizon.png")
    print(f"wrote {out / 'metrics.json'}, {out / 'report.md'}, plots in {out}")
    return 0
