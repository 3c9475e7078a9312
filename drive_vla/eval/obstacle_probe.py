"""Obstacle probe: does a policy brake for a car standing in its path, and only for it?

An embedded dataset written with obstacle scenes (``data make-embedded --obstacle-scenes F``) holds each
branched keyframe twice: as recorded, and with a car standing on the route ahead (the same ego state,
history and traffic; the expert's plan from there as its label). The policy plans from both. Per pair
this reports how far the plan travels in 3 s without and with the car, the expert's travel with it, and
whether the plan with the car runs the ego's front bumper past the car's rear (an "overrun": the plan
would hit it). A policy that reads the car plans as the expert does; one that fits braking to context
plans the same in both.

`drive-vla bench obstacle --policy DIR [--policy DIR ...] --dataroot D [--split S]` prints the table
(gaps binned) and writes JSON. Probe a dataset the policy was not trained on.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

GAP_BINS_M = ((0.0, 15.0), (15.0, 30.0), (30.0, 60.0))


def ego_front_m() -> float:
    """The ego's front bumper ahead of the rear axle (the ego frame's origin), metres."""
    from drive_vla.sim.config import EgoDynamicsConfig

    return EgoDynamicsConfig().front_m


def obstacle_pairs(reader: Any, pairs: dict[str, str], max_pairs: int) -> list[tuple[int, int, float]]:
    """(recorded index, branched index, gap to the standing car in metres) of keyframes whose branch holds a
    car (``pairs``: obstacle scene -> recorded scene), every branched keyframe up to ``max_pairs``."""
    by_scene: dict[str, list[int]] = {}
    for i in range(len(reader)):
        by_scene.setdefault(reader.scene_name(i), []).append(i)
    front = ego_front_m()
    out = []
    for shadow, scene in sorted(pairs.items()):
        if shadow not in by_scene or scene not in by_scene:
            continue
        for i, j in zip(by_scene[scene], by_scene[shadow]):
            a, b = reader.boxes(i), reader.boxes(j)
            # instance tokens differ between scenes; the recorded boxes sit where they were, the car is new
            near = np.linalg.norm(b.xyz[:, None, :2] - a.xyz[None, :, :2], axis=2) < 0.05 if len(a.xyz) else None
            extra = list(range(len(b.xyz))) if near is None else np.flatnonzero(~near.any(axis=1)).tolist()
            if len(extra) != 1:
                continue
            k = extra[0]
            out.append((i, j, float(b.xyz[k, 0] - b.lwh[k, 0] / 2 - front)))
            if len(out) >= max_pairs:
                return out
    return out


def travel_m(xy: np.ndarray) -> float:
    """The farthest a plan's waypoints reach forward (ego-frame x), metres."""
    return float(np.max(np.asarray(xy)[:, 0]))


def probe(policy: Any, reader: Any, pairs: list[tuple[int, int, float]]) -> list[dict[str, Any]]:
    """Rows (all pairs, then each gap bin that has pairs): mean 3 s travel without and with the car, the
    expert's with it, and the overrun rates, over ``pairs`` (each planned alone)."""
    front = ego_front_m()
    rows = []
    for i, j, gap in pairs:
        plain, branched = reader[i], reader[j]
        policy.reset()
        without = travel_m(policy.predict(plain.observation).trajectory.xy)
        policy.reset()
        with_car = travel_m(policy.predict(branched.observation).trajectory.xy)
        expert = travel_m(branched.targets.trajectory.xy)
        rear = gap + front  # the car's rear, ego frame
        rows.append((gap, without, with_car, expert, with_car + front > rear, expert + front > rear))
    arr = np.array(rows, dtype=np.float64).reshape(-1, 6)
    out = []
    for name, (lo, hi) in [("all", (0.0, np.inf)), *((f"{lo:.0f}-{hi:.0f} m", (lo, hi)) for lo, hi in GAP_BINS_M)]:
        sel = arr[(arr[:, 0] >= lo) & (arr[:, 0] < hi)]
        if len(sel) == 0:
            continue
        out.append(
            {
                "gap": name,
                "pairs": int(len(sel)),
                "travel_without_m": round(float(sel[:, 1].mean()), 2),
                "travel_with_m": round(float(sel[:, 2].mean()), 2),
                "expert_with_m": round(float(sel[:, 3].mean()), 2),
                "overrun_rate": round(float(sel[:, 4].mean()), 3),
                "expert_overrun_rate": round(float(sel[:, 5].mean()), 3),
            }
        )
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy", action="append", required=True, metavar="DIR", help="exported policy (repeatable)")
    parser.add_argument("--dataroot", required=True, help="embedded dataset written with --obstacle-scenes")
    parser.add_argument("--version", default="v1.0-embedded")
    parser.add_argument("--split", default="train", help="split holding the obstacle scenes (default train)")
    parser.add_argument("--max-pairs", type=int, default=300, help="at most this many keyframe pairs (default 300)")


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    from drive_vla.data.expert_plans import PlanLabelledReader
    from drive_vla.policy import DrivingPolicy
    from drive_vla.sim.obstacles import read_obstacle_scenes

    if args.max_pairs < 1:
        raise ValueError(f"--max-pairs: got {args.max_pairs}, expected >= 1")
    scenes = read_obstacle_scenes(args.dataroot, args.version)
    if not scenes:
        raise ValueError(
            f"--dataroot {args.dataroot}: no obstacle scenes, expected a dataset written with "
            "`drive-vla data make-embedded --obstacle-scenes F`"
        )
    rows = []
    for d in args.policy:
        policy = DrivingPolicy.from_pretrained(d)
        hw = tuple(policy.config.vision.image_hw)
        reader = PlanLabelledReader(args.dataroot, args.version, args.split, image_hw=hw)
        pairs = obstacle_pairs(reader, scenes, args.max_pairs)
        if not pairs:
            raise ValueError(f"--dataroot {args.dataroot} split {args.split}: no keyframe with a standing car to probe")
        found = [{"policy": str(Path(d)), **r} for r in probe(policy, reader, pairs)]
        rows += found
        a = found[0]
        print(
            f"  {d}: {a['pairs']} pairs; 3 s travel {a['travel_without_m']} m without the car, "
            f"{a['travel_with_m']} m with it (expert {a['expert_with_m']} m); overruns {a['overrun_rate']:.1%} "
            f"(expert {a['expert_overrun_rate']:.1%})"
        )
    return rows
