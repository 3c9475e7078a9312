"""Paired comparison of planners driven over the same routes (pure functions of per-route scores).

Two policies driven over the same routes differ far less than their separate confidence intervals suggest,
and far more than one mean difference shows: each route's difference is what varies. ``compare_planners``
gives each planner's mean with a 95 % bootstrap interval over routes and, against a reference planner, the
mean per-route difference with its paired interval and how many routes got better or worse.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from drive_vla.eval.bootstrap import DEFAULT_RESAMPLES, bootstrap_mean_ci

METRICS = ("driving_score", "route_completion", "collisions")


def compare_planners(
    per_route: Mapping[str, Mapping[str, Mapping[str, float]]],
    reference: str,
    resamples: int = DEFAULT_RESAMPLES,
) -> list[dict[str, Any]]:
    """One row per planner (in the given order), each compared with ``reference`` route by route.

    Args:
        per_route: planner label -> route id -> {"driving_score", and "route_completion", "collisions" where
            known}. Every planner must hold the same routes; a metric missing anywhere is left out.
        reference: the label every other planner is compared with.
        resamples: bootstrap resamples of each interval.

    Returns:
        Rows of {"planner", "routes", METRIC: mean CI, f"{METRIC} minus reference": paired CI (absent for the
        reference), "better", "worse", "equal" (routes by driving score)}.

    Raises:
        ValueError: an unknown reference, no planners, or planners that hold different routes (named).
    """
    if not per_route:
        raise ValueError("per_route: got no planners, expected at least one")
    if reference not in per_route:
        raise ValueError(f"reference: got {reference!r}, expected one of {list(per_route)}")
    routes = sorted(per_route[reference])
    for label, scores in per_route.items():
        missing, extra = sorted(set(routes) - set(scores)), sorted(set(scores) - set(routes))
        if missing or extra:
            raise ValueError(
                f"{label}: its routes differ from {reference!r}'s (missing {missing[:5]}, extra {extra[:5]}); "
                "a paired comparison needs the same routes"
            )
    metrics = [m for m in METRICS if all(m in s[r] for s in per_route.values() for r in routes)]
    if "driving_score" not in metrics:
        raise ValueError("per_route: driving_score missing on some route, expected it for every planner and route")
    ref = {m: np.array([float(per_route[reference][r][m]) for r in routes]) for m in metrics}
    rows = []
    for label, scores in per_route.items():
        x = {m: np.array([float(scores[r][m]) for r in routes]) for m in metrics}
        row: dict[str, Any] = {"planner": label, "routes": len(routes)}
        for m in metrics:
            row[m] = bootstrap_mean_ci(x[m], resamples=resamples)
        if label != reference:
            for m in metrics:
                row[f"{m} minus reference"] = bootstrap_mean_ci(x[m] - ref[m], resamples=resamples)
            diff = x["driving_score"] - ref["driving_score"]
            row["better"], row["worse"] = int((diff > 1e-9).sum()), int((diff < -1e-9).sum())
            row["equal"] = len(routes) - row["better"] - row["worse"]
        rows.append(row)
    return rows


def report_routes(report: Mapping[str, Any], source: str) -> dict[str, dict[str, dict[str, float]]]:
    """Planner label -> route id -> metrics, from a `drive-vla drive` report (``drive_report.json``)."""
    models = report.get("models")
    if not isinstance(models, Mapping) or not models:
        raise ValueError(f"{source}: models: got {type(models).__name__}, expected the planners of a drive report")
    out = {}
    for label, model in models.items():
        episodes = model.get("episodes") if isinstance(model, Mapping) else None
        if not isinstance(episodes, list) or not episodes:
            raise ValueError(f"{source}: models.{label}.episodes: got none, expected one summary per route")
        routes = {}
        for i, e in enumerate(episodes):
            try:
                routes[str(e["route_id"])] = {m: float(e.get(m) or 0.0) for m in METRICS}
            except (AttributeError, KeyError, TypeError, ValueError) as exc:
                raise ValueError(
                    f"{source}: models.{label}.episodes[{i}]: {exc!r}, expected route_id and scores"
                ) from None
        out[str(label)] = routes
    return out


BENCH_KEYS = {
    "driving_score": "route_scores",
    "route_completion": "route_completions",
    "collisions": "route_collisions",
}


def bench_routes(bench: Mapping[str, Any], source: str) -> dict[str, dict[str, dict[str, float]]]:
    """Planner -> route id -> metrics averaged over the training seeds, from `drive-vla bench driving`'s
    ``bench_driving.json`` (a metric that a seed lacks per route, as in files written before collisions were
    kept per route, is left out)."""
    planners = bench.get("planners")
    if not isinstance(planners, Mapping) or not planners:
        raise ValueError(f"{source}: planners: got {type(planners).__name__}, expected the planners of a bench run")
    out = {}
    for label, planner in planners.items():
        seeds = list((planner.get("per_seed") or {}).values()) if isinstance(planner, Mapping) else []
        if not seeds or not all(isinstance(s, Mapping) and s.get("route_scores") for s in seeds):
            raise ValueError(f"{source}: planners.{label}.per_seed: got no per-route scores, expected route_scores")
        routes = sorted(set.intersection(*(set(s["route_scores"]) for s in seeds)))
        out[str(label)] = {
            r: {
                m: float(np.mean([s[key][r] for s in seeds]))
                for m, key in BENCH_KEYS.items()
                if all(r in (s.get(key) or {}) for s in seeds)
            }
            for r in routes
        }
    return out
