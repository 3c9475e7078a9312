"""Loss curves of a run as a PNG, read from Lightning's CSV logs (matplotlib, Agg backend)."""

from __future__ import annotations

import csv
import math
from pathlib import Path


def read_csv_metrics(csv_root: str | Path) -> dict[str, list[tuple[int, float]]]:
    """metric -> [(step, value)] over every ``version_*/metrics.csv`` (a resumed run adds a version).

    Later versions win where steps overlap, so a resumed run reads as one curve.
    """
    series: dict[str, dict[int, float]] = {}
    files = sorted(Path(csv_root).glob("version_*/metrics.csv"), key=lambda p: int(p.parent.name.split("_")[-1]))
    for f in files:
        with open(f, newline="") as fh:
            for row in csv.DictReader(fh):
                step = row.get("step")
                if step in (None, ""):
                    continue
                for k, v in row.items():
                    if k in ("step", "epoch") or v in (None, ""):
                        continue
                    try:
                        series.setdefault(k, {})[int(float(step))] = float(v)
                    except ValueError:
                        continue
    return {k: sorted(d.items()) for k, d in series.items()}


def plot_loss_curves(csv_root: str | Path, out_png: str | Path) -> Path | None:
    """Plot train/val losses (one panel) and validation L2 (another) to ``out_png``; None without data."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = read_csv_metrics(csv_root)
    losses = {k: v for k, v in series.items() if (k.startswith("train/") or k.startswith("val/")) and "l2_" not in k}
    l2 = {k: v for k, v in series.items() if k.startswith("val/l2_")}
    if not losses and not l2:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, group, title, ylabel in (
        (axes[0], losses, "losses", "loss"),
        (axes[1], l2, "validation open-loop L2", "L2 (m)"),
    ):
        for name, pts in sorted(group.items()):
            steps, vals = zip(*pts)
            style = "-" if name.startswith("train/") else "o-"
            ax.plot(steps, vals, style, label=name, markersize=3)
        ax.set_title(title)
        ax.set_xlabel("optimiser step")
        ax.set_ylabel(ylabel)
        if group:
            ax.legend(fontsize=7)
            if group is losses and all(v > 0 and math.isfinite(v) for vs in group.values() for _, v in vs):
                ax.set_yscale("log")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
