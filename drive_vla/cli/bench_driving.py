"""`drive-vla bench driving`: train a recipe with several seeds, drive a suite with each, compare planners.

Stages, each the documented verb run in-process (as `drive-vla demo` does): make an embedded dataset (or
use --dataroot) -> per training seed, train the recipe (then, with --perception, add and train that stage's
free-distance head on the recipe's policy) and the ego-MLP baseline -> per training seed,
drive the suite with both -> drive the expert and the perception-free baselines once (they do not depend
on a training seed) -> for each planner, the mean and spread across training seeds of driving score,
route completion, success and collisions per route, next to each seed's 95 % bootstrap intervals.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from drive_vla.cli.demo import Stage, _run_verb
from drive_vla.eval.bootstrap import format_ci

FIXED_BASELINES = ("expert", "constant_velocity", "constant_turn_rate")
REFERENCE = "constant_velocity"  # every planner's per-route score is also compared to this one, paired
METRICS = ("driving_score", "route_completion", "success_rate", "collisions_per_route")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--recipe", default="configs/train/embedded_tiny.yaml", help="training recipe of the policy")
    parser.add_argument("--mlp-recipe", default="configs/train/ego_mlp.yaml", help="training recipe of the ego MLP")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds (recipe's `seed`)")
    parser.add_argument("--out", default="runs/bench_driving", help="folder for data, runs, drives and the report")
    parser.add_argument("--dataroot", default=None, help="existing embedded dataset (default: make one in --out)")
    parser.add_argument(
        "--scenes", type=int, default=24, help="scenes of the dataset made when --dataroot is not given"
    )
    parser.add_argument("--keyframes", type=int, default=None, help="keyframes per made scene (default: the sim's)")
    parser.add_argument("--data-seed", type=int, default=0, help="seed of the made dataset")
    parser.add_argument(
        "--obstacle-scenes", type=float, default=None, help="`data make-embedded --obstacle-scenes` of the made dataset"
    )
    parser.add_argument(
        "--data-set",
        dest="data_overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="`data make-embedded --set` of the made dataset, e.g. world.expert.max_cruise_mps=20",
    )
    parser.add_argument("--workers", type=int, default=2, help="processes for dataset generation")
    parser.add_argument("--epochs", type=int, default=None, help="policy training epochs (default: the recipe's)")
    parser.add_argument("--mlp-epochs", type=int, default=None, help="ego-MLP training epochs (default: its recipe's)")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="policy recipe override"
    )
    parser.add_argument(
        "--perception",
        default=None,
        help="perception-stage recipe run on each seed's policy before it drives "
        "(e.g. configs/train/perception_free_space.yaml; its data via --perception-set data.dataroot=D)",
    )
    parser.add_argument(
        "--perception-set",
        dest="perception_overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="perception recipe override, e.g. data.dataroot=datasets/embedded_obstacles",
    )
    parser.add_argument("--suite", default="benchmark", help="suite name or YAML path (default: the benchmark)")
    parser.add_argument("--max-routes", type=int, default=None, help="drive only the first N routes of the suite")
    parser.add_argument("--drive-seed", type=int, default=0, help="`drive-vla drive --seed`")
    parser.add_argument(
        "--controller-config",
        default=None,
        help="`drive-vla drive --controller-config` for every planner that uses the controller "
        "(e.g. configs/control/pursuit.yaml; default: the built-in PID)",
    )
    parser.add_argument("--threads", type=int, default=1, help="`drive-vla drive --threads`")
    parser.add_argument("--bootstrap-resamples", type=int, default=10_000, help="resamples of the 95%% intervals")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="keep the dataset, the exported policies and the drive reports already in --out (recompute the table)",
    )


def _train(recipe: str, data: Path, seed: int, out: Path, epochs: int | None, extra: list[str], cache: Path | None):
    argv = ["train", "--config", recipe, "--set", f"data.dataroot={data}", "--set", f"seed={seed}", "--out", str(out)]
    if cache is not None:
        argv += ["--set", f"data.cache_dir={cache}"]
    if epochs is not None:
        argv += ["--set", f"trainer.max_epochs={epochs}"]
    for o in extra:
        argv += ["--set", o]
    return argv


def _drive_argv(args: argparse.Namespace, out: Path, policies: list[Path], baselines: list[str]) -> list[str]:
    argv = ["drive", "--suite", args.suite, "--out", str(out), "--no-report", "--seed", str(args.drive_seed)]
    argv += ["--threads", str(args.threads), "--bootstrap-resamples", str(args.bootstrap_resamples)]
    if args.controller_config is not None:
        argv += ["--controller-config", str(args.controller_config)]
    if args.max_routes is not None:
        argv += ["--max-routes", str(args.max_routes)]
    for p in policies:
        argv += ["--policy", str(p)]
    for b in baselines:
        argv += ["--baseline", b]
    return argv


def _seed_metrics(model: dict[str, Any]) -> dict[str, Any]:
    """One drive of one planner: the four metrics and its bootstrap intervals."""
    ci = model["ci95"]
    return {
        "driving_score": model["driving_score"],
        "route_completion": model["route_completion"],
        "success_rate": model["success_rate"],
        "collisions_per_route": ci["collisions"]["mean"],
        "ci95": ci,
        "route_scores": {r["route_id"]: float(r["driving_score"]) for r in model.get("routes", [])},
        # per route, for `drive-vla compare` of two benchmark runs
        "route_completions": {r["route_id"]: float(r["route_completion"]) for r in model.get("routes", [])},
        "route_collisions": {e["route_id"]: float(e.get("collisions") or 0) for e in model.get("episodes", [])},
    }


def seed_mean_ci(seeds: dict[int, dict[str, Any]], reference: dict[str, float] | None = None) -> dict[str, Any]:
    """95 % bootstrap intervals over routes of the seed-averaged driving score (each route's score averaged
    over the training seeds first) and, given a ``reference`` planner's route scores, of the paired
    per-route difference to it. Empty when a seed lacks per-route scores."""
    from drive_vla.eval.bootstrap import bootstrap_mean_ci

    per_seed = [s.get("route_scores") or {} for s in seeds.values()]
    routes = sorted(set.intersection(*(set(r) for r in per_seed))) if per_seed else []
    if not routes:
        return {}
    mean = np.array([np.mean([r[k] for r in per_seed]) for k in routes])
    out: dict[str, Any] = {"seed_mean": bootstrap_mean_ci(mean)}
    if reference and all(k in reference for k in routes):
        out["minus_reference"] = bootstrap_mean_ci(mean - np.array([reference[k] for k in routes]))
    return out


def spread(values: list[float]) -> dict[str, float]:
    """Mean, sample standard deviation (0 for one value), min and max of per-seed results."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        raise ValueError("values: got none, expected one result per training seed")
    return {
        "mean": float(x.mean()),
        "std": float(x.std(ddof=1)) if x.size > 1 else 0.0,
        "min": float(x.min()),
        "max": float(x.max()),
    }


def aggregate(per_seed: dict[str, dict[int, dict[str, Any]]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Planner -> {seed: drive metrics} -> (table rows, JSON summary with spreads and per-seed intervals)."""
    rows, summary = [], {}
    reference = next(iter(per_seed.get(REFERENCE, {}).values()), {}).get("route_scores")
    for planner, seeds in per_seed.items():
        stats = {m: spread([s[m] for s in seeds.values()]) for m in METRICS}
        summary[planner] = {"seeds": sorted(seeds), "spread": stats, "per_seed": {str(k): v for k, v in seeds.items()}}
        cis = seed_mean_ci(seeds, reference if planner != REFERENCE else None)
        summary[planner].update(cis)
        row: dict[str, Any] = {"planner": planner, "seeds": len(seeds)}
        for m in METRICS:
            row[f"{m} mean"] = stats[m]["mean"]
            row[f"{m} std"] = stats[m]["std"]
            row[f"{m} min"] = stats[m]["min"]
            row[f"{m} max"] = stats[m]["max"]
        row["DS 95% CI per seed"] = "; ".join(
            f"{k}: [{v['ci95']['driving_score']['low']:.1f}, {v['ci95']['driving_score']['high']:.1f}]"
            for k, v in sorted(seeds.items())
        )
        row["DS of the seed mean, 95% CI"] = format_ci(cis["seed_mean"]) if cis else ""
        row[f"DS minus {REFERENCE}, paired 95% CI"] = (
            format_ci(cis["minus_reference"]) if "minus_reference" in cis else ""
        )
        rows.append(row)
    return rows, summary


def _compact(rows: list[dict[str, Any]]) -> str:
    from drive_vla.benchmarking import format_table

    def cell(r: dict[str, Any], m: str, d: int = 1) -> str:
        return f"{r[f'{m} mean']:.{d}f} ± {r[f'{m} std']:.{d}f} [{r[f'{m} min']:.{d}f}, {r[f'{m} max']:.{d}f}]"

    return format_table(
        [
            {
                "planner": r["planner"],
                "seeds": r["seeds"],
                "driving score": cell(r, "driving_score"),
                "route completion": cell(r, "route_completion"),
                "success %": cell(r, "success_rate"),
                "collisions/route": cell(r, "collisions_per_route", 2),
                "DS 95% CI per seed": r["DS 95% CI per seed"],
                "DS of the seed mean, 95% CI": r["DS of the seed mean, 95% CI"],
                f"minus {REFERENCE}, paired 95% CI": r[f"DS minus {REFERENCE}, paired 95% CI"],
            }
            for r in rows
        ]
    )


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    if not args.seeds or len(set(args.seeds)) != len(args.seeds):
        raise ValueError(f"--seeds: got {args.seeds}, expected distinct training seeds")
    out = Path(args.out)
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    per_seed_stages = 4 if args.perception else 3  # 2 trainings (3 with the perception stage) and a drive
    n = 1 + per_seed_stages * len(args.seeds) + (0 if args.dataroot else 1)
    i = 0

    def stage(name: str, argv: list[str], log: str, done: Path | None = None) -> None:
        nonlocal i
        i += 1
        if args.reuse and done is not None and done.exists():
            print(f"[{i}/{n}] {name}: reused {done}")
            return
        with Stage(i, n, name, logs / log):
            try:
                _run_verb(argv, logs / log)
            except SystemExit as exc:  # the shared runner names the demo; this is the bench
                raise SystemExit(str(exc.code).replace("drive-vla demo:", "drive-vla bench driving:")) from None

    cache = None
    if args.dataroot is None:
        data = out / "data"
        make = ["data", "make-embedded", "--out", str(data), "--scenes", str(args.scenes)]
        make += ["--seed", str(args.data_seed), "--image-size", "128x72", "--workers", str(args.workers)]
        if args.keyframes is not None:
            make += ["--keyframes", str(args.keyframes)]
        if args.obstacle_scenes is not None:
            make += ["--obstacle-scenes", str(args.obstacle_scenes)]
        for o in args.data_overrides:
            make += ["--set", o]
        stage(f"make an embedded dataset ({args.scenes} scenes)", make, "data.log", data / "v1.0-embedded")
        cache = out / "cache"  # decoded images shared by the seeds' training runs
    else:
        data = Path(args.dataroot)
    for s in args.seeds:
        vla = out / f"seed{s}" / ("vla_driving" if args.perception else "vla")  # drive labels it by "vla"
        argv = _train(args.recipe, data, s, vla, args.epochs, args.overrides, cache)
        stage(f"seed {s}: train {args.recipe}", argv, f"train_seed{s}.log", vla / "policy")
        if args.perception:
            seeing = out / f"seed{s}" / "vla"
            argv = ["train", "--config", args.perception, "--out", str(seeing), "--set", f"init_from={vla / 'policy'}"]
            for o in [f"seed={s}", *args.perception_overrides]:
                argv += ["--set", o]
            stage(f"seed {s}: train {args.perception}", argv, f"train_perception_seed{s}.log", seeing / "policy")
        argv = _train(args.mlp_recipe, data, s, out / f"seed{s}" / "ego_mlp", args.mlp_epochs, [], None)
        mlp_done = out / f"seed{s}" / "ego_mlp" / "policy"
        stage(f"seed {s}: train {args.mlp_recipe}", argv, f"train_ego_mlp_seed{s}.log", mlp_done)

    per_seed: dict[str, dict[int, dict[str, Any]]] = {}
    labels = {"vla": "vla", "ego_mlp": "ego_mlp"}  # run folder -> planner (drive labels a policy by its run)
    for s in args.seeds:
        drive_out = out / "drive" / f"seed{s}"
        policies = [out / f"seed{s}" / run_dir / "policy" for run_dir in labels]
        argv = _drive_argv(args, drive_out, policies, [])
        stage(f"seed {s}: drive {args.suite}", argv, f"drive_seed{s}.log", drive_out / "drive_report.json")
        report = json.loads((drive_out / "drive_report.json").read_text())
        for run_dir, label in labels.items():
            per_seed.setdefault(label, {})[s] = _seed_metrics(report["models"][run_dir])
    drive_out = out / "drive" / "baselines"
    argv = _drive_argv(args, drive_out, [], list(FIXED_BASELINES))
    stage(
        f"drive {args.suite}: {', '.join(FIXED_BASELINES)}",
        argv,
        "drive_baselines.log",
        drive_out / "drive_report.json",
    )
    report = json.loads((drive_out / "drive_report.json").read_text())
    for name in FIXED_BASELINES:  # no training seed: one drive, spread 0
        per_seed[name] = {args.seeds[0]: _seed_metrics(report["models"][name])}

    rows, summary = aggregate(per_seed)
    result = {
        "suite": report["suite"],
        "routes": len(report["models"]["expert"]["routes"]),
        "recipe": args.recipe,
        "perception": {"recipe": args.perception, "overrides": list(args.perception_overrides)}
        if args.perception
        else None,
        "mlp_recipe": args.mlp_recipe,
        "training_seeds": list(args.seeds),
        "drive_seed": args.drive_seed,
        "controller_config": args.controller_config,
        "dataroot": str(data),
        "planners": summary,
    }
    (out / "bench_driving.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"\nclosed-loop suite {report['suite']!r}, {result['routes']} routes; mean ± std [min, max] across training")
    print("seeds (the expert and the constant baselines have no training seed); scores in %")
    print(_compact(rows))
    print(f"wrote {out / 'bench_driving.json'}")
    return rows
