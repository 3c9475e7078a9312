"""The Controller protocol: a plan and the ego state in, one actuator command out."""

from __future__ import annotations

import math
from typing import Protocol, runtime_checkable

from drive_vla.types import Control, EgoState, Plan


@runtime_checkable
class Controller(Protocol):
    """Turns the latest Plan into a Control every simulation step.

    ``step`` may be called several times with the same Plan object (the policy runs slower than the
    control loop); a new Plan object means a new plan. ``reset`` starts a new episode.
    """

    def reset(self) -> None: ...

    def step(self, plan: Plan, ego: EgoState, dt: float) -> Control: ...


def check_step_inputs(plan: Plan, ego: EgoState, dt: float) -> None:
    """Raise ValueError for a non-Plan, a non-EgoState or a bad time step."""
    if not isinstance(plan, Plan):
        raise ValueError(f"plan: got {type(plan).__name__}, expected a drive_vla.types.Plan")
    if not isinstance(ego, EgoState):
        raise ValueError(f"ego: got {type(ego).__name__}, expected a drive_vla.types.EgoState")
    if isinstance(dt, bool) or not isinstance(dt, (int, float)) or not math.isfinite(dt) or not 0.0 < dt <= 10.0:
        raise ValueError(f"dt: got {dt!r}, expected a time step in seconds in (0, 10]")
