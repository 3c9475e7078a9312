"""Baseline planners and the `make_baseline(name, path=None)` registry."""

from __future__ import annotations

import importlib

from drive_vla.types import Planner

# name -> one-line description; the factories import their module only when asked for.
BASELINES: dict[str, str] = {
    "constant_velocity": "constant speed and heading from the ego state (no perception)",
    "constant_turn_rate": "constant speed and yaw rate from the ego state (no perception)",
    "ego_mlp": "ego-status MLP (AD-MLP style, no perception); needs path= to its saved directory",
}


def make_baseline(name: str, path: str | None = None) -> Planner:
    """Build a baseline planner by name.

    Args:
        name: one of BASELINES.
        path: saved model directory, for learned baselines ("ego_mlp"); must be None for the others.

    Raises:
        ValueError: unknown name, a missing path for a learned baseline, or a path for one that takes none.
    """
    if name not in BASELINES:
        listed = ", ".join(f"{k} ({v})" for k, v in BASELINES.items())
        raise ValueError(f"baseline: got {name!r}, expected one of: {listed}")
    if name in ("constant_velocity", "constant_turn_rate"):
        if path is not None:
            raise ValueError(f"path: got {path!r}, expected None (baseline {name!r} has no saved weights)")
        from drive_vla.baselines.constant_velocity import ConstantVelocityPlanner

        return ConstantVelocityPlanner(use_yaw_rate=name == "constant_turn_rate")
    if path is None:
        raise ValueError(f"path: got None, expected the directory of a saved {name!r} model")
    module = importlib.import_module("drive_vla.baselines.ego_mlp")
    return module.load_ego_mlp(path)


__all__ = ["BASELINES", "make_baseline"]
