"""`drive-vla explain`: plan one frame (a dataset sample or a recorded drive step, with its monitor record), answer."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from drive_vla.cli.args import parse_image_wh
from drive_vla.data.labels import meta_action_from_text
from drive_vla.model.config import DEFAULT_EXPLAIN_QUESTION as DEFAULT_QUESTION

QUIT_WORDS = ("quit", "exit", "q")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy", required=True, type=Path, help="directory written by DrivingPolicy.save_pretrained")
    src = parser.add_argument_group("frame from a nuScenes-format dataset")
    src.add_argument("--dataroot", type=Path, help="dataset root (holds <version>/ and samples/)")
    src.add_argument("--version", help="e.g. v1.0-mini, v1.0-embedded")
    src.add_argument("--split", default=None, help="scene split to look the sample up in (default: all scenes)")
    src.add_argument("--sample", help="sample token")
    ep = parser.add_argument_group("frame recorded by `drive-vla drive`")
    ep.add_argument("--episode", type=Path, help="episode directory (frames under frames/step_XXXXX.npz)")
    ep.add_argument("--step", type=int, help="step number within the episode")
    parser.add_argument("--question", default=None, help=f'question to ask (default: "{DEFAULT_QUESTION}")')
    parser.add_argument("--image-size", default=None, metavar="WxH", help="resize the cameras first, e.g. 128x72")
    parser.add_argument(
        "--interactive",
        action="store_true",
        help="keep the model loaded; read questions from stdin until EOF or 'quit'",
    )
    parser.add_argument("--figure", type=Path, default=None, help="also write the per-sample figure (PNG) here")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")


def load_policy(policy_dir: Path) -> Any:
    """The saved DrivingPolicy (a module-level seam so tests can hand in another Planner)."""
    from drive_vla.serve.server import load_policy as _load

    return _load(policy_dir)


def resize_observation(obs: Any, width: int, height: int) -> Any:
    """The observation with every camera resized to ``width x height`` and intrinsics scaled to match."""
    import cv2

    from drive_vla.geometry import scale_intrinsics

    h0, w0 = obs.image_hw
    if (w0, h0) == (width, height):
        return obs
    interp = cv2.INTER_AREA if width < w0 else cv2.INTER_LINEAR
    return dataclasses.replace(
        obs,
        images={c: cv2.resize(im, (width, height), interpolation=interp) for c, im in obs.images.items()},
        intrinsics={
            c: scale_intrinsics(k, width, height, (w0, h0)).astype(np.float32) for c, k in obs.intrinsics.items()
        },
    )


def load_frame(args: argparse.Namespace, wh: tuple[int, int] | None) -> tuple[Any, Any, str]:
    """(observation, dataset Sample or None, description) from the dataset or episode arguments."""
    from_dataset = any(v is not None for v in (args.dataroot, args.version, args.sample))
    from_episode = args.episode is not None or args.step is not None
    if from_dataset == from_episode:
        raise ValueError("frame: give either --dataroot/--version/--sample or --episode/--step")
    if from_dataset:
        missing = [f"--{n}" for n in ("dataroot", "version", "sample") if getattr(args, n) is None]
        if missing:
            raise ValueError(f"frame: missing {' '.join(missing)} (a dataset frame needs all three)")
        from drive_vla.data.reader import NuScenesReader

        reader = NuScenesReader(
            args.dataroot, args.version, split=args.split, image_hw=None if wh is None else wh[::-1]
        )
        try:
            sample = reader.get(args.sample)
        except KeyError as exc:
            raise ValueError(str(exc).strip("\"'")) from None
        scene = f" ({sample.meta.scene})" if sample.meta.scene else ""
        return sample.observation, sample, f"{args.version} sample {args.sample}{scene}"
    if args.episode is None or args.step is None:
        raise ValueError("frame: a recorded frame needs both --episode and --step")
    from drive_vla.episode_io import frame_path, load_observation

    path = frame_path(args.episode, args.step)
    if not path.is_file():
        steps = sorted(int(p.stem[5:]) for p in path.parent.glob("step_*.npz") if p.stem[5:].isdigit())
        near = sorted(steps, key=lambda n: abs(n - args.step))[:5]
        hint = (
            f"; recorded steps nearby: {sorted(near)} ({len(steps)} in all)" if steps else "; no frames recorded there"
        )
        raise ValueError(f"--step: {path} does not exist{hint}")
    obs = load_observation(path)
    if wh is not None:
        obs = resize_observation(obs, *wh)
    return obs, None, f"episode {args.episode} step {args.step}"


def plan_lines(plan: Any) -> list[str]:
    """The plan as text: waypoint table (ego frame), controls and meta-action."""
    traj = plan.trajectory
    lines = ["plan (ego frame: x forward, y left):", "   t_s     x_m     y_m  yaw_deg"]
    for i, ((x, y), yaw, ok) in enumerate(zip(traj.xy, traj.yaw_rad, traj.mask)):
        flag = "" if ok else "  (masked)"
        lines.append(f"  {(i + 1) * traj.dt_s:4.1f} {x:7.2f} {y:7.2f} {math.degrees(yaw):8.1f}{flag}")
    c = plan.controls
    lines.append(
        "controls: -"
        if c is None
        else f"controls: steer {c.steer:+.3f} (left +)  throttle {c.throttle:.3f}  brake {c.brake:.3f}"
    )
    lines.append(f"meta-action: {plan.meta_action or '-'}")
    if getattr(plan, "speed_cap_mps", None) is not None:
        lines.append(f"speed cap from the lane ahead (free-distance head): {plan.speed_cap_mps:.1f} m/s")
    return lines


def monitor_record(episode: Path, step: int) -> dict[str, Any] | None:
    """The failure monitor's record of ``step`` in the episode's ``steps.jsonl`` (None when it has none)."""
    path = Path(episode) / "steps.jsonl"
    if not path.is_file():
        return None
    with open(path) as fh:
        for line in fh:
            entry = json.loads(line)
            if entry.get("step") == step:
                return entry.get("monitor")
    return None


def _check_text(check: dict[str, Any]) -> str:
    value, limit, unit = check.get("value"), check.get("threshold"), check.get("unit", "")
    if check.get("detail"):
        return f"{check['name']} ({check['detail']})"
    if value is None:
        return check["name"]
    relation = "<=" if check["name"] == "off_drivable" else ">"  # off-road: the first waypoint off a lane, in time
    return f"{check['name']} ({value:.2f} {unit} {relation} {limit:.2f} {unit})"


def monitor_lines(record: dict[str, Any] | None) -> list[str]:
    """The monitor's record of a step as text: checks that fired, the fallback, the second opinion."""
    if record is None:
        return ["monitor: no record for this step (driven without --monitor, or not a planner step)"]
    if record.get("error"):
        return [f"monitor: failed ({record['error']}); the car braked"]
    fired = [c for c in record.get("checks", []) if c.get("fired")]
    ran = ", ".join(c["name"] for c in record.get("checks", []))
    lines = [
        f"monitor: fired {', '.join(_check_text(c) for c in fired)}" if fired else f"monitor: no check fired ({ran})"
    ]
    fb = record.get("fallback")
    if fb:
        left = f", {fb['hold_left_s']:.1f} s left" if "hold_left_s" in fb else ""
        cap = f" (cap {fb['speed_cap_mps']:.1f} m/s{left})" if "speed_cap_mps" in fb else ""
        lines.append(f"fallback: {fb['action']}{cap}{' - started here' if fb.get('started') else ''}")
    second = record.get("second_opinion")
    if second:
        xy = second.get("trajectory") or []
        pts = " ".join(f"({x:.1f}, {y:.1f})" for x, y in xy)
        lines.append(f"second opinion (decoded tokens, {second.get('ms', 0.0):.0f} ms): {pts}")
        if second.get("text"):
            lines.append(f"second opinion explanation: {second['text']}")
    return lines


def run(args: argparse.Namespace) -> int:
    out = sys.stdout
    if args.interactive and args.json:
        print("drive-vla explain: --json and --interactive do not go together", file=sys.stderr)
        return 2
    try:
        wh = None if args.image_size is None else parse_image_wh(args.image_size)
        if args.question is not None and not args.question.strip():
            raise ValueError("--question: got an empty string, expected a question")
        if not args.policy.is_dir():
            raise ValueError(f"--policy: {args.policy} is not a directory")
        obs, sample, where = load_frame(args, wh)
    except (ValueError, FileNotFoundError) as exc:
        print(f"drive-vla explain: {exc}", file=sys.stderr)
        return 2
    try:
        policy = load_policy(args.policy)
    except (ValueError, FileNotFoundError) as exc:
        print(f"drive-vla explain: {exc}", file=sys.stderr)
        return 2
    if not hasattr(policy, "explain"):
        print(f"drive-vla explain: {type(policy).__name__} cannot explain", file=sys.stderr)
        return 2
    policy.reset()
    plan = policy.predict(obs)
    question = args.question
    answer = policy.explain(obs, question)
    if plan.meta_action is None:  # the meta-action the answer states (labels' sentence rule)
        plan = dataclasses.replace(plan, meta_action=meta_action_from_text(answer))
    if args.figure is not None:
        from drive_vla.viz.sample_figure import render_sample, render_sample_figure

        text = f"Q: {question or DEFAULT_QUESTION} A: {answer}"
        fig = (
            render_sample(sample, plan, text=text)
            if sample is not None
            else render_sample_figure(obs, plan, text=text, title=where)
        )
        fig.save(args.figure)
    monitor = monitor_record(args.episode, args.step) if args.episode is not None else None
    if args.json:
        record = {"frame": where, "plan": plan.to_dict(), "question": question or DEFAULT_QUESTION, "answer": answer}
        if args.episode is not None:
            record["monitor"] = monitor
        if args.figure is not None:
            record["figure"] = str(args.figure)
        print(json.dumps(record), file=out)
        return 0
    h, w = obs.image_hw
    print(f"frame: {where} ({w}x{h} cameras)", file=out)
    print(
        f"instruction: {obs.instruction} | command: {obs.command.name} | speed {obs.ego.speed_mps:.2f} m/s",
        file=out,
    )
    print("\n".join(plan_lines(plan)), file=out)
    print(f"Q: {question or DEFAULT_QUESTION}\nA: {answer}", file=out)
    if args.episode is not None:
        print("\n".join(monitor_lines(monitor)), file=out)
    if args.figure is not None:
        print(f"figure: {args.figure}", file=out)
    if args.interactive:
        while True:
            if sys.stdin.isatty():
                print("question> ", end="", file=sys.stderr, flush=True)
            line = sys.stdin.readline()
            if not line:
                break
            text = line.strip()
            if text.lower() in QUIT_WORDS:
                break
            if not text:
                continue
            print(f"Q: {text}\nA: {policy.explain(obs, text)}", file=out, flush=True)
    return 0
