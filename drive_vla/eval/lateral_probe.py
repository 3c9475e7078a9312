"""Lateral probe: put the ego off its lane centre by known offsets and measure how a planner's plan corrects it.

For each seed (training range by default, never a held-out route), the embedded world is run to a
straight-road moment, the ego (and its pose history) is shifted sideways by each offset, and the planner
plans from the rendered observation. A planner that sees its offset plans back toward the lane centre:
the slope of the planned lateral position against the offset is about -1 at 3 s for a full correction
and 0 for a planner blind to its offset; the intercept is its lateral bias with no offset.

`drive-vla bench lateral --policy DIR [--policy DIR ...]` prints the table and writes JSON. Variants:
``images`` as rendered, ``black`` with every camera black (what the planner takes from the state and
route inputs alone), ``no_route`` without the route target (what it takes from the cameras and history).
A last row fits the expert's own lateral position over the 3 s it drives from the same shifted states:
the correction a student should learn.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from drive_vla.geometry import global_poses_to_local
from drive_vla.types import FUTURE_STEPS, Observation, Planner

OFFSETS_M = (-1.0, -0.5, 0.0, 0.5, 1.0)
HORIZONS = {"1.0s": 1, "2.0s": 3, "3.0s": 5}  # waypoint index of each horizon (0.5 s steps)
VARIANTS = ("images", "black", "no_route")


def black_cameras(obs: Observation) -> Observation:
    """``obs`` with every camera black: what a planner takes from its other inputs alone."""
    return dataclasses.replace(obs, images={c: np.zeros_like(im) for c, im in obs.images.items()})


def _variant(obs: Observation, variant: str) -> Observation:
    if variant == "black":
        return black_cameras(obs)
    if variant == "no_route":
        return dataclasses.replace(obs, route_target=None)
    return obs


def _shifted_worlds(
    seeds: Sequence[int], offsets_m: Sequence[float], warmup_steps: int
) -> Iterator[tuple[int, float, Any]]:
    """(seed, offset, world) on highway routes after ``warmup_steps`` expert steps, the ego shifted by offset."""
    from drive_vla.sim.embedded import EmbeddedWorld

    world = EmbeddedWorld()
    for seed in seeds:
        for offset in offsets_m:
            world.reset("highway", int(seed))
            for _ in range(warmup_steps):
                world.step(None)
            world.shift_ego_sideways(float(offset))
            yield int(seed), float(offset), world


def probe_observations(
    seeds: Sequence[int], offsets_m: Sequence[float], image_wh: tuple[int, int], warmup_steps: int = 30
) -> list[tuple[int, float, Observation]]:
    """(seed, offset, observation) on highway routes after ``warmup_steps`` expert steps, ego shifted by offset."""
    return [(s, o, w.observation(*image_wh)) for s, o, w in _shifted_worlds(seeds, offsets_m, warmup_steps)]


def expert_row(seeds: Sequence[int], offsets_m: Sequence[float], warmup_steps: int = 30) -> dict[str, Any]:
    """The same fit for the expert: its own lateral position over the 3 s it then drives (the reference)."""
    offsets, ys = [], []
    for _, offset, world in _shifted_worlds(seeds, offsets_m, warmup_steps):
        start, poses = world.ego_pose, []
        for k in range(1, FUTURE_STEPS * world.cfg.keyframe_every + 1):
            world.step(None)
            if k % world.cfg.keyframe_every == 0:
                poses.append(world.ego_pose)
        offsets.append(offset)
        ys.append(global_poses_to_local(np.array(poses), start)[:, 1])
    return _fit_row("expert", np.array(offsets), np.array(ys))


def fit_line(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Least-squares (slope, intercept, R^2) of y against x."""
    slope, intercept = np.polyfit(x, y, 1)
    resid = y - (slope * x + intercept)
    total = float(np.sum((y - y.mean()) ** 2))
    return float(slope), float(intercept), 1.0 - float(np.sum(resid**2)) / total if total > 0 else 0.0


def probe(planner: Planner, cases: list[tuple[int, float, Observation]], variant: str) -> dict[str, Any]:
    """Slope, intercept and R^2 of the planned lateral position against the offset, per horizon."""
    offsets = np.array([o for _, o, _ in cases])
    planner.reset()
    plans = [planner.predict_batch([_variant(obs, variant)])[0] for _, _, obs in cases]
    ys = np.array([p.trajectory.xy[:, 1] for p in plans])  # (N, 6) planned y, ego frame (left +)
    return _fit_row(variant, offsets, ys)


def _fit_row(variant: str, offsets: np.ndarray, ys: np.ndarray) -> dict[str, Any]:
    """Slope, intercept (bias) and R^2 per horizon of (N, 6) lateral positions against (N,) offsets."""
    row: dict[str, Any] = {"variant": variant, "cases": len(offsets)}
    for name, k in HORIZONS.items():
        slope, intercept, r2 = fit_line(offsets, ys[:, k])
        row[f"slope_{name}"], row[f"bias_m_{name}"], row[f"r2_{name}"] = slope, intercept, r2
    return row


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy", action="append", required=True, metavar="DIR", help="exported policy (repeatable)")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(100, 112)), help="training-range seeds")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    from drive_vla.policy import DrivingPolicy
    from drive_vla.sim.dataset import HELD_OUT_SEEDS

    held = [s for s in args.seeds if s in HELD_OUT_SEEDS]
    if held:
        raise ValueError(f"--seeds: got held-out seeds {held}, expected seeds outside {HELD_OUT_SEEDS}")
    rows = []
    for d in args.policy:
        policy = DrivingPolicy.from_pretrained(d)
        h, w = policy.config.vision.image_hw
        cases = probe_observations(args.seeds, OFFSETS_M, (int(w), int(h)))
        for variant in args.variants:
            rows.append({"policy": str(Path(d)), **probe(policy, cases, variant)})
            r = rows[-1]
            print(f"  {d} {variant:<9} slope@3s {r['slope_3.0s']:+.2f}  bias@3s {r['bias_m_3.0s']:+.2f} m")
    rows.append({"policy": "expert (reference)", **expert_row(args.seeds, OFFSETS_M)})
    return rows
