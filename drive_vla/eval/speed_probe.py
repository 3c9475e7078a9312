"""Speed probe: does a policy's planned change of speed follow the expert's, and does it come from the cameras?

On a dataset's samples (validation split by default, every ``--every``-th), the policy plans from each
observation as recorded (``images``) and with every camera black (``black``: what it takes from the
state and route inputs alone). For each it reports the planned change of speed (the speed over the
plan's last second minus the current speed) at the 10th/50th/90th percentile, its correlation with the
expert's change over the same second, and how far the two variants' changes differ on average: a policy
whose speed does not read its cameras plans the same change with black cameras.

`drive-vla bench speed --policy DIR [--policy DIR ...] --dataroot D [--version V --split S]` prints the
table and writes JSON.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from drive_vla.eval.lateral_probe import black_cameras
from drive_vla.types import STEP_DT_S

VARIANTS = ("images", "black")
PERCENTILES = (10, 50, 90)


def end_speed_change(xy: np.ndarray, speed_mps: float) -> float:
    """Mean speed over the last second of (T, 2) waypoints at STEP_DT_S, minus ``speed_mps``."""
    steps = round(1.0 / STEP_DT_S)
    return float(np.linalg.norm(xy[-1] - xy[-1 - steps]) / (steps * STEP_DT_S) - speed_mps)


def probe(policy: Any, samples: list[Any]) -> dict[str, Any]:
    """Speed changes planned with real and black cameras against the expert's, over ``samples`` with a full
    future (each planned alone, with the temporal memory reset)."""
    planned: dict[str, list[float]] = {v: [] for v in VARIANTS}
    expert = []
    for s in samples:
        obs, traj = s.observation, s.targets.trajectory
        v0 = float(obs.ego.speed_mps)
        expert.append(end_speed_change(np.asarray(traj.xy), v0))
        for variant, o in (("images", obs), ("black", black_cameras(obs))):
            policy.reset()
            planned[variant].append(end_speed_change(np.asarray(policy.predict(o).trajectory.xy), v0))
    ex = np.array(expert)
    out: dict[str, Any] = {"samples": len(ex)}
    for p, q in zip(PERCENTILES, np.percentile(ex, PERCENTILES)):
        out[f"expert_p{p}"] = round(float(q), 3)
    for variant, values in planned.items():
        arr = np.array(values)
        for p, q in zip(PERCENTILES, np.percentile(arr, PERCENTILES)):
            out[f"{variant}_p{p}"] = round(float(q), 3)
        out[f"{variant}_corr"] = round(float(np.corrcoef(arr, ex)[0, 1]), 3) if arr.std() > 0 else None
    diff = np.abs(np.array(planned["images"]) - np.array(planned["black"]))
    out["images_vs_black_mps"] = round(float(diff.mean()), 3)
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy", action="append", required=True, metavar="DIR", help="exported policy (repeatable)")
    parser.add_argument("--dataroot", required=True, help="nuScenes-format dataset (e.g. an embedded one)")
    parser.add_argument("--version", default="v1.0-embedded")
    parser.add_argument("--split", default="val", help="split to probe (default val)")
    parser.add_argument("--every", type=int, default=2, help="probe every N-th sample (default 2)")
    parser.add_argument("--max-samples", type=int, default=200, help="at most this many samples (default 200)")


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    from drive_vla.data.reader import NuScenesReader
    from drive_vla.policy import DrivingPolicy

    if args.every < 1 or args.max_samples < 1:
        raise ValueError(f"--every/--max-samples: got {args.every}/{args.max_samples}, expected >= 1")
    rows = []
    for d in args.policy:
        policy = DrivingPolicy.from_pretrained(d)
        reader = NuScenesReader(args.dataroot, args.version, args.split, image_hw=tuple(policy.config.vision.image_hw))
        picked = []
        for i in range(0, len(reader), args.every):
            sample = reader[i]
            if bool(np.all(sample.targets.trajectory.mask)):
                picked.append(sample)
            if len(picked) >= args.max_samples:
                break
        if not picked:
            raise ValueError(f"--dataroot {args.dataroot} split {args.split}: no sample with a full future to probe")
        row = {"policy": str(Path(d)), **probe(policy, picked)}
        rows.append(row)
        print(
            f"  {d}: planned p10 {row['images_p10']:+.2f} m/s (black {row['black_p10']:+.2f}, expert "
            f"{row['expert_p10']:+.2f}); corr {row['images_corr']}; images vs black {row['images_vs_black_mps']} m/s"
        )
    return rows
