"""Constant-velocity baselines: extrapolate the current ego speed (and optionally yaw rate) at 2 Hz."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from drive_vla.types import FUTURE_STEPS, STEP_DT_S, Observation, Plan, Trajectory


def constant_turn_rate_poses(
    speed_mps: float, yaw_rate_rps: float, steps: int = FUTURE_STEPS, dt_s: float = STEP_DT_S
) -> np.ndarray:
    """(steps, 3) ego-frame poses [x, y, yaw] at t = dt, 2 dt, ... for constant speed and turn rate.

    The path is a circular arc of radius speed / yaw_rate (a straight line when the rate is ~0), starting
    at the origin heading along +x.
    """
    t = dt_s * np.arange(1, steps + 1, dtype=np.float64)
    yaw = yaw_rate_rps * t
    if abs(yaw_rate_rps) < 1e-6:
        x, y = speed_mps * t, np.zeros_like(t)
    else:
        r = speed_mps / yaw_rate_rps
        x, y = r * np.sin(yaw), r * (1.0 - np.cos(yaw))
    return np.stack([x, y, yaw], axis=1)


@dataclass
class ConstantVelocityPlanner:
    """Plans by extrapolating the ego motion: constant speed, and constant heading or constant turn rate.

    Attributes:
        use_yaw_rate: follow the current yaw rate (constant turn rate) instead of keeping the heading.
        source: "ego" reads speed and yaw rate from ``Observation.ego``; "history" estimates them from the
            last history pose (-0.5 s) in the current ego frame, for sources without a reliable ego state.
        max_yaw_rate_rps: clip on the extrapolated turn rate (a noisy yaw rate otherwise curls the arc).
    """

    use_yaw_rate: bool = False
    source: str = "ego"
    max_yaw_rate_rps: float = 0.5

    def __post_init__(self) -> None:
        if self.source not in ("ego", "history"):
            raise ValueError(f"source: got {self.source!r}, expected 'ego' or 'history'")
        if self.max_yaw_rate_rps < 0:
            raise ValueError(f"max_yaw_rate_rps: got {self.max_yaw_rate_rps}, expected >= 0")

    def motion(self, obs: Observation) -> tuple[float, float]:
        """(speed_mps, yaw_rate_rps) used for the extrapolation."""
        if self.source == "ego":
            speed, rate = float(obs.ego.speed_mps), float(obs.ego.yaw_rate_rps)
        else:
            last = np.asarray(obs.history[-1], dtype=np.float64)  # pose at -0.5 s in the current frame
            speed = float(np.hypot(last[0], last[1]) / STEP_DT_S) * (1.0 if last[0] <= 0 else -1.0)
            rate = float(-last[2] / STEP_DT_S)
        rate = float(np.clip(rate, -self.max_yaw_rate_rps, self.max_yaw_rate_rps)) if self.use_yaw_rate else 0.0
        return speed, rate

    def predict(self, obs: Observation) -> Plan:
        speed, rate = self.motion(obs)
        poses = constant_turn_rate_poses(speed, rate).astype(np.float32)
        return Plan(trajectory=Trajectory(xy=poses[:, :2], yaw_rad=poses[:, 2]))

    def predict_batch(self, observations: Sequence[Observation]) -> list[Plan]:
        return [self.predict(o) for o in observations]

    def reset(self) -> None:
        """Stateless."""
