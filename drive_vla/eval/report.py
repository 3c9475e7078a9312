"""Open-loop reports: the printed table (every number labelled with its protocol) and metrics.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from drive_vla.benchmarking import format_table
from drive_vla.eval.openloop_metrics import BOX_OVERLAP, HORIZONS_S, PROTOCOLS

_KEYS = [f"{h}s" for h in HORIZONS_S] + ["avg"]


def _fmt(v: Any, digits: int) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def metric_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (model, protocol) of a compare-style report ({"models": {name: model_report}})."""
    rows = []
    labels = {**{p.name: p.label for p in PROTOCOLS.values()}, BOX_OVERLAP.name: BOX_OVERLAP.label + " [unpublished]"}
    for model, rep in report["models"].items():
        for name, label in labels.items():
            if name not in rep:
                continue
            m = rep[name] or {}
            row: dict[str, Any] = {"model": model, "protocol": label}
            for k in _KEYS:
                row[f"L2 {k} (m)"] = _fmt((m.get("l2_m") or {}).get(k), 2)
            for k in _KEYS:
                row[f"col {k} (%)"] = _fmt((m.get("collision_pct") or {}).get(k), 2)
            row["samples"] = m.get("num_samples", 0)
            row["gt-coll steps excl."] = m.get("gt_collision_steps_excluded", 0)
            row["failures"] = rep["failures"]["count"]
            rows.append(row)
    return rows


def language_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for model, rep in report["models"].items():
        lang = rep.get("language")
        if not lang:
            continue
        meta, expl = lang["meta_action"], lang["explanation"]
        consistency = lang.get("plan_consistency") or {}
        rows.append(
            {
                "model": model,
                "meta-action acc": _fmt(meta["accuracy"], 3),
                "speed acc": _fmt(meta["speed_accuracy"], 3),
                "direction acc": _fmt(meta["direction_accuracy"], 3),
                "meta pairs": meta["num_pairs"],
                "plan consistency": _fmt(consistency.get("accuracy"), 3),
                "ROUGE-L F1": _fmt(expl["rouge_l_f1"], 3),
                "text pairs": expl["num_pairs"],
            }
        )
    return rows


def format_report(report: dict[str, Any]) -> str:
    """Markdown text: dataset line, metric table, protocol legend, language table, failures."""
    ds = report.get("dataset", {})
    lines = [
        f"open-loop evaluation: {ds.get('version')} split {ds.get('split')!r}, {ds.get('num_samples')} samples"
        f" ({ds.get('samples_with_full_future')} with the full 6-step future,"
        f" {ds.get('samples_without_boxes')} without future boxes)",
        "",
        format_table(metric_rows(report)),
        "",
        "protocols:",
    ]
    lines += [f"  {name}: {desc}" for name, desc in report.get("protocols", {}).items()]
    lines.append(
        "  collision: ego footprint 1.85 x 4.084 m centred 0.5 m ahead of the LiDAR; steps where the ground"
        " truth itself collides are not counted; grid protocols use the axis-aligned footprint (as published)"
    )
    lang = language_rows(report)
    if lang:
        lines += [
            "",
            format_table(lang),
            "  meta-action acc: stated meta-action (plan or explanation sentence) vs the label; plan consistency:"
            " stated meta-action vs labels.meta_action of the planner's own trajectory",
        ]
    for model, rep in report["models"].items():
        f = rep["failures"]
        if f["count"]:
            first = f["samples"][0]
            lines.append(f"{model}: {f['count']} failed samples (first: {first['token']}: {first['error']})")
    return "\n".join(lines)


def write_metrics_json(report: dict[str, Any], path: str | Path) -> Path:
    """Write the report as indented JSON (NaN/inf become null)."""

    def clean(v: Any) -> Any:
        if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(clean(report), indent=2) + "\n")
    return p
