"""A planner that averages the plans of several policies (LEAD's released agent ensembles three training
seeds): waypoints and headings are averaged per step (headings as unit vectors), controls per channel.
The first member answers explanations and names the meta-action."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from drive_vla.types import Control, Observation, Plan, Trajectory


class EnsemblePlanner:
    """``predict_batch`` of every member, averaged. Members: anything with ``predict_batch`` (and ``reset``)."""

    def __init__(self, members: Sequence[Any]) -> None:
        if len(members) < 2:
            raise ValueError(f"ensemble: got {len(members)} member(s), expected at least 2 policies")
        self.members = list(members)
        self.config = getattr(self.members[0], "config", None)

    def reset(self) -> None:
        for m in self.members:
            if hasattr(m, "reset"):
                m.reset()

    def predict_batch(self, observations: Sequence[Observation]) -> list[Plan]:
        per_member = [m.predict_batch(observations) for m in self.members]
        return [average_plans([plans[i] for plans in per_member]) for i in range(len(observations))]

    def predict(self, obs: Observation) -> Plan:
        return self.predict_batch([obs])[0]

    def explain(self, obs: Observation, question: str | None = None) -> str:
        first = self.members[0]
        if not hasattr(first, "explain"):
            raise NotImplementedError("the ensemble's first member cannot explain")
        return first.explain(obs) if question is None else first.explain(obs, question)


def average_plans(plans: Sequence[Plan]) -> Plan:
    """The mean plan: xy per step, heading as the angle of the mean unit vector, controls per channel; a
    step is valid where every member's is; timings add up (the members run one after another); the speed cap is
    the lowest of the members' caps."""
    xy = np.mean([p.trajectory.xy for p in plans], axis=0)
    yaw = np.stack([p.trajectory.yaw_rad for p in plans])
    mean_yaw = np.arctan2(np.sin(yaw).mean(axis=0), np.cos(yaw).mean(axis=0))
    mask = np.logical_and.reduce([p.trajectory.mask for p in plans])
    controls = None
    if all(p.controls is not None for p in plans):
        c = np.mean([[p.controls.steer, p.controls.throttle, p.controls.brake] for p in plans], axis=0)
        controls = Control(float(c[0]), float(c[1]), float(c[2]))
    timings: dict[str, float] = {}
    for p in plans:
        for k, v in p.timings_ms.items():
            timings[k] = timings.get(k, 0.0) + float(v)
    traj = Trajectory(xy.astype(np.float32), mean_yaw.astype(np.float32), mask, plans[0].trajectory.dt_s)
    caps = [p.speed_cap_mps for p in plans if p.speed_cap_mps is not None]
    return Plan(
        trajectory=traj,
        controls=controls,
        meta_action=plans[0].meta_action,
        timings_ms=timings,
        speed_cap_mps=min(caps) if caps else None,
    )
