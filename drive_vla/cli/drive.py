"""`drive-vla drive`: drive a suite of routes closed-loop with policies and baselines; score and report."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from pathlib import Path

from drive_vla.cli.args import parse_image_wh

DRIVE_BASELINES = ("expert", "constant_velocity", "constant_turn_rate")
MONITOR_MODES = ("on", "shadow", "off")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", choices=("embedded", "carla"), default="embedded", help="closed-loop backend")
    parser.add_argument(
        "--policy", action="append", default=[], metavar="DIR", help="exported policy directory (repeatable)"
    )
    parser.add_argument(
        "--baseline",
        action="append",
        default=[],
        metavar="NAME",
        help=f"baseline to drive (repeatable): {', '.join(DRIVE_BASELINES)}",
    )
    parser.add_argument(
        "--suite", default="heldout", help="suite name (configs/eval/closed_loop_<name>.yaml) or YAML path"
    )
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument(
        "--controller", choices=("pid", "tokens"), default="pid", help="how policy plans become controls"
    )
    parser.add_argument(
        "--controller-config",
        default=None,
        metavar="YAML",
        help="PIDControllerConfig YAML for every waypoint-driven planner (default: the built-in values, "
        "configs/control/pid.yaml)",
    )
    parser.add_argument("--policy-hz", type=float, default=2.0, help="planner calls per second")
    parser.add_argument("--max-routes", type=int, default=None, help="drive only the first N routes of the suite")
    parser.add_argument(
        "--image-size", default=None, help="camera render size WxH (default: the policy's, else 256x144)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="CARLA server host (--env carla)")
    parser.add_argument("--port", type=int, default=2000, help="CARLA server port (--env carla)")
    parser.add_argument("--town", default=None, help="CARLA town (--env carla; default: the suite's scenario)")
    parser.add_argument("--no-report", action="store_true", help="skip the per-route HTML reports")
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="run seed: Python, NumPy and torch are seeded per route from (seed, route), so runs repeat exactly",
    )
    parser.add_argument(
        "--ensemble",
        action="store_true",
        help="drive one planner that averages the plans of every --policy (e.g. three training seeds)",
    )
    parser.add_argument(
        "--quantize",
        default="none",
        help="weights of a VLA policy: 'none' (float32) or 'int8' (PyTorch dynamic INT8 linear layers, CPU)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (results repeat exactly for the same value; float sums depend on it)",
    )
    parser.add_argument(
        "--monitor",
        choices=MONITOR_MODES,
        default="off",
        help="failure monitor: 'on' checks every plan and, when a check fires, slows down and asks the policy's "
        "slow path for a second opinion; 'shadow' checks and logs only; 'off' (default: its thresholds are "
        "not yet validated, and it changes how routes are driven) runs no checks",
    )
    parser.add_argument(
        "--monitor-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a failure-monitor threshold (repeatable), e.g. head_tokens_m=8 (see drive_vla/monitor.py)",
    )
    parser.add_argument(
        "--bootstrap-resamples", type=int, default=10_000, help="resamples of the 95%% confidence intervals"
    )


def parse_wh(text: str | None) -> tuple[int, int] | None:
    return None if text is None else parse_image_wh(text)


def _agents(args: argparse.Namespace):
    """(label, factory(env) -> (planner, controller))."""
    from drive_vla.baselines import make_baseline
    from drive_vla.control import make_controller

    agents = []
    for d in args.policy:
        if not Path(d).is_dir():
            raise ValueError(f"--policy: {d} is not a directory (expected an exported policy)")
    if args.ensemble:
        if len(args.policy) < 2:
            raise ValueError(f"--ensemble: got {len(args.policy)} --policy, expected at least 2 VLA policies")

        def ensemble(env):
            from drive_vla.ensemble import EnsemblePlanner
            from drive_vla.policy import DrivingPolicy

            members = [DrivingPolicy.from_pretrained(d, quantize=args.quantize) for d in args.policy]
            return EnsemblePlanner(members), make_controller(args.controller, args.controller_config)

        agents.append((f"ensemble-of-{len(args.policy)}", ensemble))
    for d in [] if args.ensemble else args.policy:

        def load(env, d=d):
            from drive_vla.baselines.ego_mlp import CONFIG_FILE, load_ego_mlp

            if (Path(d) / CONFIG_FILE).is_file():  # an exported ego MLP drives through its waypoints
                return load_ego_mlp(d), make_controller("pid", args.controller_config)
            from drive_vla.policy import DrivingPolicy

            policy = DrivingPolicy.from_pretrained(d, quantize=args.quantize)
            return policy, make_controller(args.controller, args.controller_config)

        agents.append((Path(d).name if Path(d).name != "policy" else Path(d).parent.name, load))
    for name in args.baseline:
        if name not in DRIVE_BASELINES:
            raise ValueError(f"--baseline: got {name!r}, expected one of {list(DRIVE_BASELINES)}")
        if name == "expert":

            def expert(env):
                from drive_vla.sim.env import ExpertControl, ExpertPlanner

                if not hasattr(env, "world"):
                    raise ValueError("--baseline expert: only the embedded world has an expert driver")
                return ExpertPlanner(env), ExpertControl()

            agents.append(("expert", expert))
        else:
            agents.append(
                (name, lambda env, name=name: (make_baseline(name), make_controller("pid", args.controller_config)))
            )
    if not agents:
        raise ValueError("drive: give at least one --policy DIR or --baseline NAME")
    return agents


def _make_env(args: argparse.Namespace, image_wh: tuple[int, int] | None):
    if args.env == "embedded":
        from drive_vla.sim.env import EmbeddedEnv

        return EmbeddedEnv(image_wh=image_wh)
    from carla_agents.carla_env import CarlaEnv

    return CarlaEnv(host=args.host, port=args.port, town=args.town, image_wh=image_wh)


def _policy_image_wh(planner) -> tuple[int, int] | None:
    cfg = getattr(planner, "config", None)
    vision = getattr(cfg, "vision", None)
    hw = getattr(vision, "image_hw", None)  # the model's input size: render at it, no resize needed
    return (int(hw[1]), int(hw[0])) if hw else None


def write_strip(route_dir: Path, max_frames: int = 8) -> Path | None:
    """Concatenate up to ``max_frames`` evenly spaced front-camera frames into ``strip.png``."""
    import cv2
    import numpy as np

    frames = sorted((route_dir / "frames").glob("strip_*.png"))
    if not frames:
        return None
    pick = [frames[i] for i in np.linspace(0, len(frames) - 1, min(max_frames, len(frames))).round().astype(int)]
    images = [cv2.imread(str(p)) for p in pick]
    path = route_dir / "strip.png"
    cv2.imwrite(str(path), np.concatenate(images, axis=1))
    return path


def run(args: argparse.Namespace) -> int:
    from drive_vla.benchmarking import format_table
    from drive_vla.closed_loop import DriveLoopConfig
    from drive_vla.eval.bootstrap import format_ci, route_cis
    from drive_vla.eval.closed_loop_scoring import summarize_routes
    from drive_vla.eval.monitor_metrics import merge_monitor_summaries
    from drive_vla.suite_driving import drive_routes, fix_torch
    from drive_vla.suites import load_suite

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from drive_vla.model.quantize import check_quantize

    check_quantize(args.quantize, "cpu", "--quantize")
    if args.policy:
        fix_torch(args.threads, "--threads")
    suite = load_suite(args.suite)
    if args.controller_config is not None:
        from drive_vla.config import ConfigError, load_config
        from drive_vla.control import PIDControllerConfig

        try:  # read once: a bad file fails here, before any route is driven, and no route re-reads it
            args.controller_config = load_config(PIDControllerConfig, args.controller_config)
        except ConfigError as exc:
            raise ValueError(f"--controller-config: {exc}") from None
    if suite.env != args.env:
        raise ValueError(f"--suite {suite.name}: its routes are for env {suite.env!r}, not --env {args.env!r}")
    routes = suite.routes[: args.max_routes] if args.max_routes else suite.routes
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    monitor = _monitor_config(args.monitor, args.monitor_set)
    loop_cfg = DriveLoopConfig(policy_hz=args.policy_hz, max_time_s=suite.max_time_s, seed=args.seed, monitor=monitor)
    rows, ci_lines = [], []
    report = {
        "suite": suite.name,
        "env": args.env,
        "held_out": suite.held_out,
        "seed": args.seed,
        "monitor": args.monitor,
        "monitor_config": None if monitor is None else dataclasses.asdict(monitor),
        # None: the built-in PIDControllerConfig defaults
        "controller_config": None if args.controller_config is None else dataclasses.asdict(args.controller_config),
        "models": {},
    }
    for label, factory in _agents(args):
        env = None
        try:
            env = _make_env(args, parse_wh(args.image_size))
            planner, controller = factory(env)
            wh = parse_wh(args.image_size) or _policy_image_wh(planner)
            if wh and hasattr(env, "image_wh"):
                env.image_wh = wh

            def report_route(route, result, label=label):
                route_dir = out / label / route.route_id
                write_strip(route_dir)
                if not args.no_report:
                    _html_report(route_dir)
                print(
                    f"  {label:<20} {route.route_id:<22} DS {result.score['driving_score']:6.1f}  RC "
                    f"{result.score['route_completion']:6.1f}  {result.summary.get('done_reason')}"
                    + (f"  monitor fires {result.summary['monitor']['fires']}" if "monitor" in result.summary else "")
                )

            results = drive_routes(env, planner, controller, routes, loop_cfg, out / label, report_route)
            records, summaries = [r.record for r in results], [r.summary for r in results]
        finally:
            if env is not None:
                env.close()
        total = summarize_routes(records, [r.route_id for r in routes])
        # 95 % percentile-bootstrap intervals of the means over routes (a route that did not run counts 0).
        by_id = {s["route_id"]: s for s in summaries}
        per_route = {
            k: [float(by_id.get(r.route_id, {}).get(k) or 0.0) for r in routes]
            for k in ("driving_score", "route_completion", "collisions")
        }
        ci = route_cis(per_route, resamples=args.bootstrap_resamples)
        monitor_total = merge_monitor_summaries([s.get("monitor", {}) for s in summaries])
        report["models"][label] = {**total, "ci95": ci, "monitor": monitor_total, "episodes": summaries}
        ci_lines.append(
            f"  {label:<20} DS {format_ci(ci['driving_score'])}  RC {format_ci(ci['route_completion'])}  "
            f"collisions/route {format_ci(ci['collisions'], 2)}"
        )
        steps_per_s = [s["env_steps_per_s"] for s in summaries if s.get("env_steps_per_s")]
        policy_ms = [s["policy_ms_p50"] for s in summaries if s.get("policy_ms_p50")]
        offsets = [s["route_offset_m"]["mean"] for s in summaries if s.get("route_offset_m")]
        rows.append(
            {
                "model": label,
                "driving_score": total["driving_score"],
                "route_completion": total["route_completion"],
                "success_rate": total["success_rate"],
                "collisions": total["collisions"],
                "mean_speed_mps": total["mean_speed_mps"],
                "comfort_pct": total["comfort_pct"],
                # mean over routes of each route's mean distance from the route's centre line (lateral tracking)
                "route_offset_m": sum(offsets) / len(offsets) if offsets else None,
                "env_steps_per_s": sum(steps_per_s) / len(steps_per_s) if steps_per_s else None,
                "policy_ms_p50": sorted(policy_ms)[len(policy_ms) // 2] if policy_ms else None,
                **_monitor_columns(monitor_total),
            }
        )
    table = format_table(rows)
    print(
        f"\nclosed-loop suite {suite.name!r} ({len(routes)} routes, env {args.env}; scores in %, CARLA leaderboard rules;"
        f" failure monitor {args.monitor})"
    )
    print(table)
    print(f"means over routes with 95% bootstrap confidence intervals ({args.bootstrap_resamples} resamples):")
    print("\n".join(ci_lines))
    report["table"] = rows
    (out / "drive_report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (out / "drive_report.md").write_text(table + "\n")
    print(f"wrote {out / 'drive_report.json'}")
    return 0


def _monitor_config(mode: str, overrides: list[str]):
    """The MonitorConfig of ``--monitor`` and ``--monitor-set`` (None when the monitor is off)."""
    from drive_vla.config import apply_overrides, from_dict
    from drive_vla.monitor import MonitorConfig

    if mode == "off":
        if overrides:
            raise ValueError(f"--monitor-set: got {overrides}, but --monitor is off")
        return None
    data = apply_overrides({"intervene": mode == "on"}, overrides)
    return from_dict(MonitorConfig, data)


def _monitor_columns(total: dict) -> dict:
    """Report columns of the failure monitor: fires per minute, infractions flagged beforehand and missed."""
    if not total:
        return {}
    return {
        "monitor_fires": total["fires"],
        "monitor_fires_per_min": total["fires_per_min"],
        "infractions_flagged": total["infractions_flagged"],
        "infractions_missed": total["infractions_missed"],
    }


def _html_report(route_dir: Path) -> None:
    try:
        from drive_vla.viz.episode_report import write_episode_report
    except ImportError:
        return
    try:
        write_episode_report(route_dir)
    except Exception as exc:  # noqa: BLE001 - a report failure must not lose the driving results
        logging.getLogger(__name__).warning("episode report for %s failed: %s", route_dir, exc)
