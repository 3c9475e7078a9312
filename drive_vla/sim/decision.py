"""The expert's decision record (why it acts) and the sentence that explains it, built from its numbers."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from drive_vla.geometry import global_poses_to_local, sim_to_global
from drive_vla.sim.config import EgoDynamicsConfig
from drive_vla.sim.world import World
from drive_vla.types import Control

REASONS = ("free_road", "following", "yielding", "turning", "stopping")


@dataclass(frozen=True)
class ExpertDecision:
    """What the expert does now and why.

    Attributes:
        reason: one of REASONS.
        explanation: one sentence saying why, built from the fields below.
        control: the control the expert applies (steer positive left, throttle, brake).
        accel_mps2: the longitudinal acceleration it asks for.
        target_speed_mps: the speed it aims at on a free road here (desired, speed limit, curvature).
        lead_id, lead_distance_m, lead_speed_mps: the vehicle it follows or that blocks it (gap bumper to
            bumper, speed along the path).
        yield_to: instance id of the vehicle it yields to.
        turn: "left" / "right" while turning as instructed.
        stop_cause: "blocked" or "goal" when stopping.
        ahead_id, ahead_distance_m, ahead_speed_mps: the nearest vehicle or barrier on the ego's path
            (within ExpertConfig.path_check_m), whether or not it shapes the decision.
    """

    reason: str
    explanation: str
    control: Control
    accel_mps2: float
    target_speed_mps: float
    lead_id: str | None = None
    lead_distance_m: float | None = None
    lead_speed_mps: float | None = None
    yield_to: str | None = None
    turn: str | None = None
    stop_cause: str | None = None
    ahead_id: str | None = None
    ahead_distance_m: float | None = None
    ahead_speed_mps: float | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["control"] = {"steer": self.control.steer, "throttle": self.control.throttle, "brake": self.control.brake}
        return d


@dataclass
class Constraint:
    """Something the ego must not run into: a vehicle, a barrier, a yield line or the goal."""

    gap_m: float  # bumper to the obstacle, along the path
    speed_mps: float  # obstacle speed along the path
    kind: str  # "vehicle" | "crossing" | "static" | "yield" | "goal"
    agent: object = None
    min_gap_m: float | None = None
    accel_mps2: float | None = None  # set: this acceleration instead of IDM's
    why: str = "has the right of way"  # yield: why the other car goes first ("is already in the junction", ...)


def accel_to_control(accel_mps2: float, speed_mps: float, ego: EgoDynamicsConfig, steer: float) -> Control:
    """The pedal positions that produce ``accel_mps2`` under the world's Control mapping (see EgoDynamicsConfig)."""
    coast = ego.coast_decel_mps2 if speed_mps > 0.05 else 0.0
    throttle = brake = 0.0
    if accel_mps2 >= -coast:
        throttle = (accel_mps2 + coast) / ego.max_accel_mps2
    else:
        brake = (-accel_mps2 - coast) / ego.max_brake_mps2
    if speed_mps < 0.05 and accel_mps2 <= 0.0:
        brake = max(brake, 0.3)  # hold the car at rest
    clip = lambda v: float(min(1.0, max(0.0, v)))  # noqa: E731
    return Control(steer=float(min(1.0, max(-1.0, steer))), throttle=clip(throttle), brake=clip(brake))


def explain(
    world: World,
    c: Constraint | None,
    control: Control,
    a: float,
    target: float,
    curve_limited: bool,
    turn: str | None,
    ahead: dict,
    stopped_speed_mps: float = 0.5,
) -> ExpertDecision:
    """The decision record for the binding constraint ``c`` (None: nothing ahead shapes the driving).

    Args:
    world: the world (for the route, the scenario and the ego pose).
    c: the obstacle that decides the acceleration, or None.
    control, a, target: the control applied, the acceleration asked for, the free-road target speed.
    curve_limited: whether the target speed is limited by the road's curvature.
    turn: "left" / "right" while performing the instructed turn or merge, else None.
    ahead: ahead_id / ahead_distance_m / ahead_speed_mps of the nearest thing on the path, if any.
    stopped_speed_mps: below this an obstacle counts as stopped.
    """
    ego, route = world.ego, world.route
    common = dict(control=control, accel_mps2=float(a), target_speed_mps=float(target), **ahead)
    if c is not None and c.kind == "goal":
        to_goal = max(0.0, route.length_m - world.route_arc)
        if to_goal > 15.0:
            text = f"The ego car slows down as it approaches its destination {to_goal:.0f} m ahead."
        else:
            text = "The ego car slows down and stops because it has reached its destination."
        return ExpertDecision("stopping", text, stop_cause="goal", **common)
    if c is not None and c.kind == "yield":
        who = _describe(world, c.agent)
        if route.merge_to is not None:
            text = f"The ego car waits on the ramp for a safe gap, yielding to the {who} in the lane it merges into."
        else:
            place = "roundabout entry" if world.scenario.name == "roundabout" else "intersection"
            text = f"The ego car slows down at the {place} to yield to the {who}, which {c.why}."
        return ExpertDecision("yielding", text, yield_to=c.agent.instance_id, **common)
    if c is not None:
        d = max(0.0, c.gap_m)
        lead_id = getattr(c.agent, "instance_id", "barrier")
        lead = dict(lead_id=lead_id, lead_distance_m=float(d), lead_speed_mps=float(c.speed_mps))
        if c.kind == "static":
            text = f"The ego car stops because a barrier blocks its lane {d:.0f} m ahead."
            return ExpertDecision("stopping", text, stop_cause="blocked", **lead, **common)
        noun = _noun(c.agent)
        if c.kind == "crossing":
            text = f"The ego car brakes because a {noun} is about to cross its path {d:.0f} m ahead."
            return ExpertDecision("stopping", text, stop_cause="blocked", **lead, **common)
        if c.speed_mps < stopped_speed_mps and (ego.speed < 3.0 or a < -1.0):
            text = f"The ego car stops because a stopped {noun} blocks its path {d:.0f} m ahead."
            return ExpertDecision("stopping", text, stop_cause="blocked", **lead, **common)
        text = (
            f"The ego car follows the {noun} {d:.0f} m ahead, which drives at {c.speed_mps:.0f} m/s, "
            "keeping a safe gap."
        )
        return ExpertDecision("following", text, **lead, **common)
    if turn is not None:
        if route.merge_to is not None:
            text = f"The ego car merges into the highway lane on its {turn} as instructed."
        elif world.scenario.name == "roundabout":
            text = f"The ego car drives through the roundabout to the exit on the {turn}, as instructed."
        else:
            text = f"The ego car turns {turn} at the intersection as instructed."
        if curve_limited and a < -0.3:
            text = text[:-1] + f", slowing to {target:.0f} m/s for the curve."
        return ExpertDecision("turning", text, turn=turn, **common)
    if curve_limited and a < -0.3:
        text = f"The road ahead is clear; the ego car slows to {target:.0f} m/s for the curve ahead."
    elif a > 1.0:
        text = f"The road ahead is clear, so the ego car speeds up towards {target:.0f} m/s."
    else:
        text = f"The road ahead is clear, so the ego car keeps its lane at about {target:.0f} m/s."
    return ExpertDecision("free_road", text, **common)


def _noun(agent) -> str:
    return "truck" if getattr(agent, "category", "") == "vehicle.truck" else "car"


def _describe(world: World, agent) -> str:
    """ "car approaching from the left", "oncoming car", ...: from the agent's bearing in the ego frame."""
    x, y, yaw = sim_to_global(*agent.position, agent.heading)
    local = global_poses_to_local(np.array([[x, y, yaw]]), world.ego_pose)[0]
    bearing = math.degrees(math.atan2(local[1], local[0]))
    if abs(bearing) <= 25:
        where = "ahead"
    elif abs(bearing) >= 155:
        where = "from behind"
    else:
        where = "from the left" if bearing > 0 else "from the right"
    if where == "ahead":
        oncoming = abs(math.degrees(local[2])) > 135 and agent.speed > 0.5
        return f"oncoming {_noun(agent)}" if oncoming else f"{_noun(agent)} ahead"
    verb = "approaching" if agent.speed > 0.5 else "waiting"
    return f"{_noun(agent)} {verb} {where}"
