"""`drive-vla compare`: planners from drive reports over the same routes, compared route by route (paired)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "reports",
        nargs="+",
        metavar="REPORT",
        help="drive_report.json of `drive-vla drive` or bench_driving.json of `drive-vla bench driving` (seed "
        "means per route), or the folders holding them; all over the same routes",
    )
    parser.add_argument(
        "--reference", default=None, help="planner every other one is compared with (default: the first)"
    )
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the rows as JSON here")
    parser.add_argument(
        "--bootstrap-resamples", type=int, default=10_000, help="resamples of the 95%% confidence intervals"
    )


def load_planners(paths: list[str]) -> dict[str, dict]:
    """Label -> route -> metrics over every report; a label found in several reports gets its folder's name."""
    from drive_vla.eval.compare import bench_routes, report_routes

    found = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            path = (
                path / "bench_driving.json" if (path / "bench_driving.json").is_file() else path / "drive_report.json"
            )
        try:
            report = json.loads(path.read_text())
        except FileNotFoundError:
            raise ValueError(f"REPORT: {path} does not exist (expected a drive_report.json or its folder)") from None
        except json.JSONDecodeError as exc:
            raise ValueError(f"REPORT: {path} is not JSON ({exc})") from None
        read = bench_routes if isinstance(report, dict) and "planners" in report else report_routes
        found += [(path, label, routes) for label, routes in read(report, str(path)).items()]
    labels = [label for _, label, _ in found]
    planners = {}
    for path, label, routes in found:
        key = label if labels.count(label) == 1 else f"{path.parent.name}/{label}"
        if key in planners:
            raise ValueError(f"REPORT: planner {key!r} is given twice")
        planners[key] = routes
    return planners


def run(args: argparse.Namespace) -> int:
    from drive_vla.benchmarking import format_table
    from drive_vla.eval.bootstrap import format_ci
    from drive_vla.eval.compare import compare_planners

    if args.bootstrap_resamples < 1:
        raise ValueError(f"--bootstrap-resamples: got {args.bootstrap_resamples}, expected >= 1")
    planners = load_planners(args.reports)
    reference = args.reference or next(iter(planners))
    if reference not in planners:
        raise ValueError(f"--reference: got {reference!r}, expected one of {list(planners)}")
    rows = compare_planners(planners, reference, resamples=args.bootstrap_resamples)
    table = []
    for r in rows:
        paired = "better" in r  # every row but the reference's
        row = {
            "planner": r["planner"],
            "routes": r["routes"],
            "driving score": format_ci(r["driving_score"]),
            f"DS minus {reference}": format_ci(r["driving_score minus reference"]) if paired else "",
            "better / worse / equal routes": f"{r['better']} / {r['worse']} / {r['equal']}" if paired else "",
        }
        if "collisions" in r:  # absent where a bench file kept no per-route collisions
            row["collisions/route"] = format_ci(r["collisions"], 2)
            row[f"collisions minus {reference}"] = format_ci(r["collisions minus reference"], 2) if paired else ""
        table.append(row)
    print(f"paired comparison over {rows[0]['routes']} routes; means with 95% bootstrap intervals over routes")
    print(format_table(table))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"reference": reference, "rows": rows}, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0
