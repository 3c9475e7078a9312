"""Open-loop plots (matplotlib, Agg): BEV panels of plans vs ground truth, and L2 per horizon per model."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from drive_vla.eval.box_collision import ego_box_corners
from drive_vla.eval.occupancy import GROUP_CODE
from drive_vla.eval.openloop import OpenLoopRun
from drive_vla.eval.openloop_metrics import HORIZONS_S, PROTOCOLS

_GROUP_COLOURS = {GROUP_CODE["vehicle"]: "tab:blue", GROUP_CODE["pedestrian"]: "tab:purple", GROUP_CODE["other"]: "0.6"}
_MODEL_COLOURS = ("tab:red", "tab:green", "tab:orange", "tab:cyan", "tab:olive", "tab:brown", "tab:pink")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def pick_panels(num_samples: int, num_panels: int) -> list[int]:
    """Evenly spaced sample indices for the BEV grid."""
    if num_samples <= 0 or num_panels <= 0:
        return []
    return sorted({int(round(v)) for v in np.linspace(0, num_samples - 1, min(num_panels, num_samples))})


def plot_bev_grid(run: OpenLoopRun, path: str | Path, num_panels: int = 9, view_m: float = 40.0) -> Path:
    """Grid of BEV panels (LiDAR frame: x right, y forward): agent boxes over the future (fading with
    time; vehicles blue, pedestrians purple), the ground-truth trajectory (black dashed) and every planner's
    plan (coloured; failed plans are absent), with the ego footprint at the origin."""
    plt = _pyplot()
    idx = pick_panels(len(run.gt), num_panels)
    if not idx:
        raise ValueError("run: got no samples, expected at least one to plot")
    cols = math.ceil(math.sqrt(len(idx)))
    rows = math.ceil(len(idx) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.6 * rows), squeeze=False)
    half = view_m / 2
    for ax, i in zip(axes.flat, idx):
        boxes = run.gt.boxes[i]
        if len(boxes):
            corners = boxes.corners()
            for c, step, grp in zip(corners, boxes.step, boxes.group):
                ax.fill(c[:, 0], c[:, 1], color=_GROUP_COLOURS[int(grp)], alpha=0.08 + 0.1 * int(step), lw=0)
        ego = ego_box_corners(np.zeros(2), np.array(np.pi / 2))
        ax.fill(ego[:, 0], ego[:, 1], facecolor="none", edgecolor="k", lw=0.8)
        gt, m = run.gt.xy[i], run.gt.mask[i]
        ax.plot(np.r_[0, gt[m, 0]], np.r_[0, gt[m, 1]], "k.--", lw=1.5, ms=4, label="ground truth", zorder=5)
        texts = []
        for j, (name, out) in enumerate(run.models.items()):
            xy = out.xy[i]
            colour = _MODEL_COLOURS[j % len(_MODEL_COLOURS)]
            if not np.all(np.isfinite(xy)):
                texts.append((f"{name[-24:]}: failed", colour))
                continue
            ax.plot(np.r_[0, xy[:, 0]], np.r_[0, xy[:, 1]], ".-", color=colour, lw=1.2, ms=3, label=name)
            if m[-1]:
                texts.append((f"{name[-24:]}: {float(np.linalg.norm(xy[-1] - gt[-1])):.2f} m @3s", colour))
        for k, (text, colour) in enumerate(texts):
            ax.text(0.02, 0.97 - 0.06 * k, text, transform=ax.transAxes, fontsize=5, color=colour, va="top")
        ax.set_xlim(-half, half)
        ax.set_ylim(-half / 2, 1.5 * half)
        ax.set_aspect("equal")
        ax.tick_params(labelsize=6)
        ax.set_title(f"{run.gt.tokens[i][:12]} ({run.gt.scenes[i]})", fontsize=6)
    for ax in list(axes.flat)[len(idx) :]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=7)
    fig.suptitle("BEV, LiDAR frame (x right, y forward, m)", fontsize=9)
    fig.tight_layout(rect=(0, 0.05, 1, 0.97))
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(p, dpi=110)
    plt.close(fig)
    return p


def plot_l2_per_horizon(report: dict[str, Any], path: str | Path) -> Path:
    """L2 at 1 s / 2 s / 3 s for every model, one panel per published protocol in the report."""
    plt = _pyplot()
    names = [p for p in PROTOCOLS if any(isinstance(r.get(p), dict) for r in report["models"].values())]
    if not names:
        raise ValueError("report: got no protocol results, expected at least one model with metrics")
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.4), squeeze=False)
    for ax, proto in zip(axes.flat, names):
        for j, (model, rep) in enumerate(report["models"].items()):
            m = rep.get(proto)
            if not isinstance(m, dict) or m["l2_m"]["1s"] is None:
                continue
            colour = _MODEL_COLOURS[j % len(_MODEL_COLOURS)]
            ax.plot(HORIZONS_S, [m["l2_m"][f"{h}s"] for h in HORIZONS_S], "o-", color=colour, label=model)
        ax.set_xticks(HORIZONS_S)
        ax.set_xlabel("horizon (s)")
        ax.set_ylabel("L2 (m)")
        ax.set_title(PROTOCOLS[proto].label, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(p, dpi=110)
    plt.close(fig)
    return p
