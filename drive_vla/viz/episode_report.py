"""Per-episode HTML report: frame strip, speed and control plots, rationale timeline, infractions and scores.

Reads what the drive loop records in an episode directory:
    steps.jsonl         one JSON object per step: step, time_s, speed_mps, control {steer, throttle, brake},
                        plan (Plan.to_dict()), explanation (or null), route_completion, infractions [...]
    summary.json        scenario, seed, driving_score, route_completion, success, infractions, mean_speed_mps, ...
    frames/strip_XXXXX.png   optional rendered frames
and writes one self-contained HTML file (images inlined as base64 PNG, no scripts, no external links).
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STRIP_PATTERN = re.compile(r"strip_(\d+)\.png$")
REPORT_NAME = "report.html"

_CSS = """
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 24px; color: #1d1d1f; background: #fafafa; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin-top: 28px; border-bottom: 1px solid #ddd; }
.sub { color: #666; margin-top: 0; }
table { border-collapse: collapse; font-size: 13px; }
td, th { border: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f0f0f3; }
.scores td.v { font-weight: 600; font-variant-numeric: tabular-nums; }
.strip { display: flex; flex-wrap: wrap; gap: 8px; }
.strip figure { margin: 0; } .strip img { height: 160px; max-width: 100%; border: 1px solid #ccc; }
.strip figcaption { font-size: 12px; color: #555; text-align: center; }
.plots img { max-width: 100%; border: 1px solid #e5e5e5; background: #fff; }
.ok { color: #1a7f37; } .bad { color: #c62828; }
.timeline td.t { white-space: nowrap; font-variant-numeric: tabular-nums; }
"""


@dataclass
class Episode:
    """What an episode directory holds, parsed."""

    directory: Path
    steps: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    strips: list[tuple[int, Path]] = field(default_factory=list)


def read_episode(episode_dir: str | Path) -> Episode:
    """Parse ``steps.jsonl``, ``summary.json`` and list ``frames/strip_*.png`` (each may be absent, not all).

    Raises:
        ValueError: the directory does not exist, holds none of the files, or a file is not valid JSON
            (the message names the file and line).
    """
    d = Path(episode_dir)
    if not d.is_dir():
        raise ValueError(f"episode_dir: {str(d)!r} is not a directory")
    ep = Episode(d)
    steps_file, summary_file = d / "steps.jsonl", d / "summary.json"
    if not steps_file.is_file() and not summary_file.is_file():
        raise ValueError(f"episode_dir: {str(d)!r} has neither steps.jsonl nor summary.json")
    if steps_file.is_file():
        for n, line in enumerate(steps_file.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{steps_file}: line {n}: invalid JSON ({exc.msg})") from None
            if not isinstance(record, dict):
                raise ValueError(f"{steps_file}: line {n}: got {type(record).__name__}, expected a JSON object")
            ep.steps.append(record)
    if summary_file.is_file():
        try:
            ep.summary = json.loads(summary_file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{summary_file}: invalid JSON ({exc.msg} at line {exc.lineno})") from None
        if not isinstance(ep.summary, dict):
            raise ValueError(f"{summary_file}: got {type(ep.summary).__name__}, expected a JSON object")
    frames = d / "frames"
    if frames.is_dir():
        for p in frames.iterdir():
            m = STRIP_PATTERN.search(p.name)
            if m and p.is_file():
                ep.strips.append((int(m.group(1)), p))
        ep.strips.sort()
    return ep


# ----------------------------------------------------------------------------- helpers


def _num(value: Any) -> float:
    """A finite float or NaN (missing, null or non-numeric values plot as gaps)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    return float(value) if math.isfinite(float(value)) else math.nan


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3f}" if math.isfinite(value) else str(value)
    if isinstance(value, (list, tuple)):
        return ", ".join(_fmt(v) for v in value) if value else "none"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_fmt(v)}" for k, v in value.items()) if value else "none"
    if value is None:
        return "-"
    return str(value)


def _esc(value: Any) -> str:
    return html.escape(_fmt(value), quote=True)


def _img(data: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(data).decode("ascii")}">'


def _time(step: dict[str, Any], i: int) -> float:
    t = _num(step.get("time_s"))
    return t if math.isfinite(t) else float(i)


def _control(step: dict[str, Any], key: str) -> float:
    c = step.get("control")
    return _num(c.get(key)) if isinstance(c, dict) else math.nan


def _plots_png(steps: list[dict[str, Any]]) -> bytes:
    """Speed (with infractions marked), route completion and controls over time, as one PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    t = [_time(s, i) for i, s in enumerate(steps)]
    fig = Figure(figsize=(10, 6.4), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax_speed, ax_ctrl = fig.subplots(2, 1, sharex=True)
    ax_speed.plot(t, [_num(s.get("speed_mps")) for s in steps], color="#1565c0", label="speed (m/s)")
    marked = False
    for ti, s in zip(t, steps):
        if s.get("infractions"):
            ax_speed.axvline(ti, color="#c62828", alpha=0.6, lw=1, label=None if marked else "infraction")
            marked = True
    ax_speed.set_ylabel("speed (m/s)")
    rc = [_num(s.get("route_completion")) for s in steps]
    if any(math.isfinite(v) for v in rc):
        ax_rc = ax_speed.twinx()
        ax_rc.plot(t, rc, color="#6a1b9a", ls="--", label="route completion")
        ax_rc.set_ylabel("route completion")
        ax_rc.set_ylim(0, 1.05)
        ax_rc.legend(loc="lower right", fontsize=8)
    ax_speed.legend(loc="upper left", fontsize=8)
    ax_speed.grid(alpha=0.3)
    for key, color in (("steer", "#2e7d32"), ("throttle", "#ef6c00"), ("brake", "#c62828")):
        ax_ctrl.plot(
            t, [_control(s, key) for s in steps], color=color, label=key + (" (left +)" if key == "steer" else "")
        )
    ax_ctrl.set_ylim(-1.05, 1.05)
    ax_ctrl.set_xlabel("time (s)")
    ax_ctrl.set_ylabel("control")
    ax_ctrl.legend(loc="upper left", fontsize=8, ncol=3)
    ax_ctrl.grid(alpha=0.3)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _pick(items: list[Any], k: int) -> list[Any]:
    """At most ``k`` items spread evenly, first and last included."""
    if len(items) <= k:
        return items
    idx = sorted({round(i * (len(items) - 1) / (k - 1)) for i in range(k)})
    return [items[i] for i in idx]


# ----------------------------------------------------------------------------- sections


def _scores_html(summary: dict[str, Any]) -> str:
    if not summary:
        return "<p>No summary.json.</p>"
    first = ["driving_score", "route_completion", "success", "infractions", "mean_speed_mps", "scenario", "seed"]
    keys = [k for k in first if k in summary] + [k for k in summary if k not in first]
    rows = []
    for k in keys:
        v = summary[k]
        cls = ""
        if k == "success" and isinstance(v, bool):
            cls = " ok" if v else " bad"
        rows.append(f'<tr><th>{html.escape(str(k))}</th><td class="v{cls}">{_esc(v)}</td></tr>')
    return '<table class="scores">' + "".join(rows) + "</table>"


def _strip_html(ep: Episode, max_frames: int) -> str:
    if not ep.strips:
        return "<p>No frames recorded.</p>"
    figs = [
        f"<figure>{_img(p.read_bytes(), f'step {n}')}<figcaption>step {n}</figcaption></figure>"
        for n, p in _pick(ep.strips, max_frames)
    ]
    note = f"<p class='sub'>{len(figs)} of {len(ep.strips)} frames.</p>" if len(figs) < len(ep.strips) else ""
    return note + '<div class="strip">' + "".join(figs) + "</div>"


def _timeline_html(steps: list[dict[str, Any]]) -> str:
    rows = []
    for i, s in enumerate(steps):
        text = s.get("explanation")
        if not text:
            continue
        plan = s.get("plan") if isinstance(s.get("plan"), dict) else {}
        rows.append(
            f'<tr><td class="t">{_esc(s.get("step", i))}</td><td class="t">{_time(s, i):.1f}</td>'
            f'<td class="t">{_esc(_num(s.get("speed_mps")))}</td><td>{_esc(plan.get("meta_action"))}</td>'
            f"<td>{_esc(text)}</td></tr>"
        )
    if not rows:
        return "<p>No explanations were asked for in this episode.</p>"
    head = "<tr><th>step</th><th>time (s)</th><th>speed (m/s)</th><th>meta-action</th><th>explanation</th></tr>"
    return '<table class="timeline">' + head + "".join(rows) + "</table>"


def _infractions_html(steps: list[dict[str, Any]]) -> str:
    rows = [
        f'<tr><td class="t">{_esc(s.get("step", i))}</td><td class="t">{_time(s, i):.1f}</td><td>{_esc(s["infractions"])}</td></tr>'
        for i, s in enumerate(steps)
        if s.get("infractions")
    ]
    if not rows:
        return "<p>None.</p>"
    return (
        '<table class="timeline"><tr><th>step</th><th>time (s)</th><th>infractions</th></tr>'
        + "".join(rows)
        + "</table>"
    )


def render_episode_html(ep: Episode, max_frames: int = 12) -> str:
    """The report page of a parsed episode."""
    s = ep.summary
    title = f"drive-vla episode: {_fmt(s.get('scenario', ep.directory.name))}"
    sub = f"seed {_esc(s.get('seed'))} &middot; {len(ep.steps)} steps &middot; {html.escape(str(ep.directory))}"
    plots = _img(_plots_png(ep.steps), "speed and controls over time") if ep.steps else "<p>No steps recorded.</p>"
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p class='sub'>{sub}</p>"
        f"<h2>Scores</h2>{_scores_html(s)}"
        f"<h2>Frames</h2>{_strip_html(ep, max_frames)}"
        f"<h2>Speed and controls</h2><div class='plots'>{plots}</div>"
        f"<h2>Rationale timeline</h2>{_timeline_html(ep.steps)}"
        f"<h2>Infractions</h2>{_infractions_html(ep.steps)}"
        "</body></html>\n"
    )


def write_episode_report(episode_dir: str | Path, out: str | Path | None = None, max_frames: int = 12) -> Path:
    """Write the self-contained HTML report of an episode.

    Args:
        episode_dir: the directory the drive loop recorded.
        out: where to write; default ``episode_dir/report.html``.
        max_frames: most strip frames shown (spread evenly over the episode).

    Returns:
        The path of the HTML file.
    """
    if max_frames < 1:
        raise ValueError(f"max_frames: got {max_frames}, expected at least 1")
    ep = read_episode(episode_dir)
    path = Path(out) if out is not None else ep.directory / REPORT_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_episode_html(ep, max_frames), encoding="utf-8")
    return path
