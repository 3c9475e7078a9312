"""Expert-plan labels: a per-sample counterfactual expert trajectory beside a dataset, and a reader that trains on it.

On-policy (DAgger) scenes are driven partly by the policy, so the scene's next keyframe poses are not what
the expert would have driven. Their samples carry the expert's plan from that state instead, stored as
``<dataroot>/<version>/drive_vla_expert_plans.json``: ``{"dt_s": 0.5, "plans": {sample_token: [[x, y,
yaw] * FUTURE_STEPS]}}``, poses in the sample's ego frame (x forward, y left, metres; yaw radians CCW).
``PlanLabelledReader`` is a ``NuScenesReader`` whose future trajectory (and so the command and the
fallback meta-action) is that plan where a sample has one; every other sample reads as before.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from drive_vla.data.reader import NuScenesReader
from drive_vla.types import FUTURE_STEPS, STEP_DT_S, Trajectory

PLANS_FILE = "drive_vla_expert_plans.json"


def plans_path(dataroot: str | os.PathLike, version: str) -> Path:
    return Path(dataroot) / version / PLANS_FILE


def _check_plan(token: str, plan: np.ndarray) -> np.ndarray:
    arr = np.asarray(plan, dtype=np.float64)
    if arr.shape != (FUTURE_STEPS, 3) or not np.all(np.isfinite(arr)):
        raise ValueError(
            f"plans[{token!r}]: got an array of shape {arr.shape}, expected {FUTURE_STEPS} finite [x, y, yaw] poses"
        )
    return arr


def write_expert_plans(dataroot: str | os.PathLike, version: str, plans: Mapping[str, np.ndarray]) -> Path:
    """Write the plans of a dataset's samples (token -> (FUTURE_STEPS, 3) ego-frame poses), atomically."""
    path = plans_path(dataroot, version)
    if not path.parent.is_dir():
        raise ValueError(f"dataroot/version: {path.parent} does not exist, expected a written dataset")
    data = {
        "dt_s": STEP_DT_S,
        "plans": {str(t): [[round(float(v), 4) for v in row] for row in _check_plan(t, p)] for t, p in plans.items()},
    }
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data) + "\n")
    tmp.replace(path)
    return path


def read_expert_plans(dataroot: str | os.PathLike, version: str) -> dict[str, np.ndarray]:
    """The plans of a dataset (empty when it has no plans file)."""
    path = plans_path(dataroot, version)
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc}), expected an expert-plans file") from exc
    if not isinstance(data, dict) or not isinstance(data.get("plans"), dict):
        raise ValueError(f"{path}: got keys {sorted(data) if isinstance(data, dict) else data!r}, expected 'plans'")
    if abs(float(data.get("dt_s", STEP_DT_S)) - STEP_DT_S) > 1e-9:
        raise ValueError(f"{path}: dt_s: got {data.get('dt_s')!r}, expected {STEP_DT_S}")
    return {str(t): _check_plan(t, p) for t, p in data["plans"].items()}


class PlanLabelledReader(NuScenesReader):
    """A NuScenesReader whose future trajectory is the sample's expert plan where the dataset has one.

    Takes NuScenesReader's arguments. ``plans`` holds the plans of this split's samples.
    """

    def __init__(self, dataroot: str | os.PathLike, version: str, *args, **kwargs) -> None:
        super().__init__(dataroot, version, *args, **kwargs)
        every = read_expert_plans(dataroot, version)
        self.plans = {t: every[t] for t in self.tokens if t in every}

    def future(self, i: int) -> Trajectory:
        plan = self.plans.get(self.tokens[i])
        if plan is None:
            return super().future(i)
        mask = np.ones(FUTURE_STEPS, dtype=bool)
        return Trajectory(plan[:, :2].astype(np.float32), plan[:, 2].astype(np.float32), mask, STEP_DT_S)
