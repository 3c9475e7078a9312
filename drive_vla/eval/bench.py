"""Metric throughput benchmark: open-loop metrics on synthetic nuScenes-val-sized predictions and boxes."""

from __future__ import annotations

import argparse

import numpy as np

from drive_vla.benchmarking import median, time_calls
from drive_vla.eval.occupancy import GROUP_CODE, AgentBoxes, occupancy_collisions
from drive_vla.eval.openloop_metrics import openloop_metrics

NUSCENES_VAL_SAMPLES = 6019


def synthetic_inputs(
    num_samples: int, agents: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, AgentBoxes]:
    """Predictions, ground truth, mask and moving agents in the LiDAR frame, roughly like nuScenes val.

    The ego drives forward at 0-15 m/s with a small turn rate; a fifth of the agents share its lane
    ahead (so the rasteriser has work), the rest are spread over 40 m x 80 m; a quarter are pedestrians.
    """
    rng = np.random.default_rng(seed)
    t = 0.5 * np.arange(1, 7)
    speed = rng.uniform(0, 15, num_samples)[:, None]
    rate = rng.normal(0, 0.1, num_samples)[:, None]
    heading = np.pi / 2 + rate * t  # LiDAR frame: forward is +y
    step = speed * 0.5
    gt = np.cumsum(np.stack([step * np.cos(heading), step * np.sin(heading)], -1), axis=1)  # (N, 6, 2)
    pred = gt + rng.normal(0, 1, gt.shape) * (0.15 * t)[None, :, None]
    mask = np.ones((num_samples, 6), dtype=bool)
    mask[rng.random(num_samples) < 0.05, 4:] = False  # a few samples near the end of their scene

    n_agents = num_samples * agents
    in_lane = rng.random(n_agents) < 0.2
    x0 = np.where(in_lane, rng.normal(0, 1, n_agents), rng.uniform(-20, 20, n_agents))
    y0 = np.where(in_lane, rng.uniform(3, 40, n_agents), rng.uniform(-30, 50, n_agents))
    yaw = np.where(rng.random(n_agents) < 0.8, np.pi / 2, rng.uniform(-np.pi, np.pi, n_agents))
    pedestrian = rng.random(n_agents) < 0.25
    v = np.where(pedestrian, rng.uniform(0, 1.5, n_agents), rng.uniform(0, 10, n_agents))
    xy = np.stack([x0 + v * np.cos(yaw) * t[:, None], y0 + v * np.sin(yaw) * t[:, None]], -1)  # (6, A, 2)
    boxes = AgentBoxes(
        sample=np.tile(np.repeat(np.arange(num_samples), agents), 6),
        step=np.repeat(np.arange(6), n_agents),
        xy=xy.reshape(-1, 2),
        length_m=np.tile(np.where(pedestrian, 0.7, 4.6), 6),
        width_m=np.tile(np.where(pedestrian, 0.7, 1.9), 6),
        yaw_rad=np.tile(yaw, 6),
        group=np.tile(np.where(pedestrian, GROUP_CODE["pedestrian"], GROUP_CODE["vehicle"]).astype(np.int8), 6),
    )
    return pred, gt, mask, boxes


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--samples", type=int, default=NUSCENES_VAL_SAMPLES, help="samples (nuScenes val: 6019)")
    parser.add_argument("--agents", type=int, default=30, help="agents per sample, present at all 6 steps")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per row")
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> list[dict]:
    pred, gt, mask, boxes = synthetic_inputs(args.samples, args.agents, args.seed)
    cases = {
        "occupancy collisions (pred + gt, vehicle + pedestrian)": lambda: occupancy_collisions(
            [pred, gt], boxes, ("vehicle", "pedestrian")
        ),
        "openloop_metrics stp3 + uniad": lambda: openloop_metrics(pred, gt, mask, boxes, box_overlap=False),
        "openloop_metrics stp3 + uniad + box overlap": lambda: openloop_metrics(pred, gt, mask, boxes),
    }
    seconds = {name: median(time_calls(fn, args.repeats, warmup=1)) for name, fn in cases.items()}
    seconds["box overlap diagnostic (shapely), by difference"] = (
        seconds["openloop_metrics stp3 + uniad + box overlap"] - seconds["openloop_metrics stp3 + uniad"]
    )
    return [
        {
            "stage": name,
            "samples": args.samples,
            "boxes": len(boxes),
            "median_s": s,
            "samples_per_s": args.samples / s if s > 0 else None,
        }
        for name, s in seconds.items()
    ]
