"""`drive-vla bench policy --sweep`: the cost curve of the policy over cameras, visual tokens, image size and
LM size, in both output modes, on 1 and 2 threads; a table, JSON and a PNG of latency against prompt tokens.

Each point changes one thing from its LM's shipped config (one factor at a time), so a row's cost
difference to its base row is that factor's. The real-size LMs are built with their real shapes and
random weights (``--random-init``): speed and memory do not depend on the weights.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from drive_vla.model import bench

TINY = "configs/model/tiny.yaml"
SMOLLM2 = "configs/model/smollm2-135m.yaml"
QWEN = "configs/model/qwen2.5-0.5b.yaml"


@dataclass(frozen=True)
class Point:
    """One model of the sweep: its config, the overrides that make the point, and what they change."""

    label: str
    config: str
    overrides: tuple[str, ...] = ()
    random_init: bool = False
    factor: str = "base"


def sweep_points(lms: list[str]) -> list[Point]:
    """The sweep: for each LM its shipped config, then cameras 1 and 3, 4x and 8x the visual tokens and 2x and
    4x the image side (the tiny model), or cameras 1 and 3 (the real-size LMs, where the LM dominates)."""
    points: list[Point] = []
    known = {"tiny": (TINY, False), "smollm2-135m": (SMOLLM2, True), "qwen2.5-0.5b": (QWEN, True)}
    for lm in lms:
        if lm not in known:
            raise ValueError(f"--sweep-lms: got {lm!r}, expected some of {list(known)}")
        config, random_init = known[lm]
        points.append(Point(lm, config, (), random_init))
        for n in (1, 3):
            points.append(
                Point(
                    f"{lm}, {n} cam" + ("s" if n > 1 else ""),
                    config,
                    (f"vision.num_cameras={n}",),
                    random_init,
                    "cameras",
                )
            )
        if lm == "tiny":
            for q in (32, 64):
                points.append(Point(f"{lm}, {q} tokens", config, (f"vision.num_queries={q}",), False, "tokens"))
            for h, w in ((144, 256), (288, 512)):
                points.append(Point(f"{lm}, {w}x{h}", config, (f"vision.image_hw=[{h},{w}]",), False, "image"))
    return points


def run(args: argparse.Namespace) -> list[dict]:
    """Time every point (``bench.run`` per point and thread count); write the PNG beside ``args.json``."""
    threads = [int(t) for t in str(args.sweep_threads).split(",") if t.strip()]
    if not threads or any(t < 1 for t in threads):
        raise ValueError(f"--sweep-threads: got {args.sweep_threads!r}, expected comma-separated counts >= 1")
    lms = [s.strip() for s in str(args.sweep_lms).split(",") if s.strip()]
    rows: list[dict] = []
    for point in sweep_points(lms):
        for t in threads:
            point_args = argparse.Namespace(**vars(args))
            point_args.config = point.config
            point_args.override = list(args.override) + list(point.overrides)
            point_args.random_init = point.random_init
            point_args.threads = t
            point_args.sweep = False
            point_args.explain = False
            point_args.input_size = None
            for row in bench.run(point_args):
                rows.append({"point": point.label, "factor": point.factor, **row})
    plot_cost_curve(rows, Path(args.json).with_suffix(".png"))
    return rows


def plot_cost_curve(rows: list[dict], path: Path) -> Path:
    """p50 latency against prompt tokens, one marker per mode and thread count, log axes; returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5))
    series = sorted({(r["mode"], r["threads"]) for r in rows})
    for mode, threads in series:
        sel = [r for r in rows if r["mode"] == mode and r["threads"] == threads]
        ax.scatter(
            [r["prompt_tokens"] for r in sel],
            [r["p50_ms"] for r in sel],
            marker="o" if mode == "head" else "s",
            alpha=0.8,
            label=f"{mode} mode, {threads} thread{'s' if threads > 1 else ''}",
        )
        for r in sel:
            if threads == min(t for _, t in series):
                ax.annotate(r["point"], (r["prompt_tokens"], r["p50_ms"]), fontsize=6, alpha=0.7)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("prompt tokens (prefill)")
    ax.set_ylabel("predict p50 latency (ms)")
    ax.set_title("Policy cost curve (CPU)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
