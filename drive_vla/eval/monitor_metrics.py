"""How well the failure monitor warned: fire rate, and infractions it flagged beforehand or missed (pure)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

# Infractions a monitor could warn of (a timeout is not a failure of one moment).
FLAGGABLE_KINDS = (
    "collision_vehicle",
    "collision_pedestrian",
    "collision_static",
    "outside_route_lanes",
    "route_deviation",
    "agent_blocked",
)


def infraction_onsets(
    infractions: Iterable[Any], first_off_road_s: float | None, blocked_after_s: float
) -> list[tuple[str, float]]:
    """(kind, onset seconds) of each ``Infraction``: off-road from its first step off the road, blocked from
    when the car stopped (``blocked_after_s`` before the route ended); others at their own ``time_s``."""
    onsets = []
    for i in infractions:
        if i.kind == "outside_route_lanes":
            if first_off_road_s is not None:
                onsets.append((i.kind, float(first_off_road_s)))
        elif i.time_s is not None:
            onsets.append((i.kind, float(i.time_s) - (blocked_after_s if i.kind == "agent_blocked" else 0.0)))
    return onsets


def fires_per_minute(n_fires: int, duration_s: float) -> float | None:
    """Fires per minute of driving; None for an empty drive."""
    if duration_s < 0:
        raise ValueError(f"duration_s: got {duration_s!r}, expected >= 0 seconds")
    return None if duration_s == 0 else 60.0 * n_fires / duration_s


def flag_infractions(
    fire_times_s: Sequence[float], infractions: Iterable[tuple[str, float]], window_s: float
) -> dict[str, Any]:
    """Which infractions the monitor flagged: a fire within ``window_s`` before the infraction (or at it).

    Args:
        fire_times_s: times, seconds, of the planner frames where a check fired.
        infractions: (kind, onset time in seconds) of each infraction; kinds outside FLAGGABLE_KINDS are
            ignored.
        window_s: how long before its onset a fire still counts as a warning, seconds.

    Returns:
        {"flagged": n, "missed": n, "by_kind": {kind: {"flagged": n, "missed": n}}, "lead_s": [seconds from
        the earliest fire in the window to the onset, per flagged infraction]}.
    """
    if not window_s > 0:
        raise ValueError(f"window_s: got {window_s!r}, expected > 0 seconds")
    fires = sorted(float(t) for t in fire_times_s)
    out: dict[str, Any] = {"flagged": 0, "missed": 0, "by_kind": {}, "lead_s": []}
    for kind, onset_s in infractions:
        if kind not in FLAGGABLE_KINDS:
            continue
        warned = [t for t in fires if onset_s - window_s - 1e-9 <= t <= onset_s + 1e-9]
        key = "flagged" if warned else "missed"
        out[key] += 1
        out["by_kind"].setdefault(kind, {"flagged": 0, "missed": 0})[key] += 1
        if warned:
            out["lead_s"].append(float(onset_s - warned[0]))
    return out


def merge_monitor_summaries(summaries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Totals over routes of the per-route "monitor" summaries (routes without one are skipped)."""
    rows = [s for s in summaries if s]
    if not rows:
        return {}
    fires = sum(int(s.get("fires", 0)) for s in rows)
    minutes = sum(float(s.get("driven_s", 0.0)) for s in rows) / 60.0
    by_check: dict[str, int] = {}
    for s in rows:
        for name, n in s.get("by_check", {}).items():
            by_check[name] = by_check.get(name, 0) + int(n)
    return {
        "mode": rows[0].get("mode"),
        "fires": fires,
        "fires_per_min": fires / minutes if minutes > 0 else None,
        "by_check": by_check,
        "fallback_s": sum(float(s.get("fallback_s", 0.0)) for s in rows),
        "second_opinions": sum(int(s.get("second_opinions", 0)) for s in rows),
        "monitor_errors": sum(int(s.get("monitor_errors", 0)) for s in rows),
        "infractions_flagged": sum(int(s.get("infractions_flagged", 0)) for s in rows),
        "infractions_missed": sum(int(s.get("infractions_missed", 0)) for s in rows),
    }
