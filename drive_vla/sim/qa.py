"""Per-sample language labels of embedded-world keyframes: DriveLM-style QA built from simulator facts.

Every answer is computed from the simulated state (agent boxes, their simulated futures, the expert's
decision), never guessed: perception (what is around), prediction (what the lead or nearest vehicle
will do, from its simulated future), planning (what the ego should do and why), behavior (what the ego
does).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from drive_vla.data import labels as label_rules
from drive_vla.data.labels import meta_action_sentence
from drive_vla.geometry import global_poses_to_local
from drive_vla.sim.expert import ExpertDecision
from drive_vla.sim.world import Agent

FRONT_RANGE_M = 30.0
CLOSE_RANGE_M = 15.0
PREDICT_RANGE_M = 40.0

_SPEED_VERB = {"accelerate": "speed up", "keep speed": "keep its speed", "decelerate": "slow down", "stop": "stop"}
_DIR_VERB = {"straight": "go straight", "left": "turn left", "right": "turn right"}
_EGO_SPEED = {
    "accelerate": "accelerating",
    "keep speed": "keeping its speed",
    "decelerate": "slowing down",
    "stop": "stopping",
}
_EGO_DIR = {"straight": "going straight", "left": "turning left", "right": "turning right"}


def _noun(category: str) -> str:
    return {"vehicle.truck": "truck", "movable_object.barrier": "barrier"}.get(category, "car")


def _count(n: int, noun: str = "vehicle") -> str:
    if n == 0:
        return f"There are no {noun}s"
    return f"There is one {noun}" if n == 1 else f"There are {n} {noun}s"


def _where(x: float, y: float) -> str:
    """Coarse bearing of an ego-frame point: ahead, front-left, left, back-left, behind, ..."""
    b = math.degrees(math.atan2(y, x))
    names = ["ahead", "to the front-left", "to the left", "to the back-left", "behind"]
    k = min(4, int((abs(b) + 22.5) // 45))
    name = names[k]
    return name.replace("left", "right") if b < 0 and 0 < k < 4 else name


def speed_words(speed_mps: float) -> str:
    if speed_mps < 0.5:
        return "is not moving"
    if speed_mps < 6.0:
        return "is driving slowly"
    if speed_mps < 15.0:
        return "is driving at a moderate speed"
    return "is driving fast"


def agent_future_action(agent: Agent, future: Sequence[Agent | None], dt_s: float = 0.5) -> str | None:
    """The agent's own meta-action over its simulated future (its frame at the keyframe), or None."""
    ref = (float(agent.xyz[0]), float(agent.xyz[1]), float(agent.yaw_rad))
    poses = np.array([[a.xyz[0], a.xyz[1], a.yaw_rad] if a is not None else [0.0, 0.0, 0.0] for a in future])
    mask = np.array([a is not None for a in future])
    if not mask[:1].any():
        return None
    xy = global_poses_to_local(poses, ref)[:, :2]
    return label_rules.meta_action(agent.speed_mps, xy, mask, dt_s)


def build_qa(
    ego_pose: tuple[float, float, float],
    ego_speed_mps: float,
    agents: Sequence[Agent],
    futures: Mapping[str, Sequence[Agent | None]],
    decision: ExpertDecision,
    meta_action: str,
    ego_front_m: float = 3.5,
) -> dict[str, list[dict[str, str]]]:
    """DriveLM-style QA for one keyframe.

    Args:
        ego_pose: ego (x, y, yaw) in the global frame.
        ego_speed_mps: ego speed.
        agents: other agents at the keyframe (global boxes).
        futures: instance id -> that agent at each future keyframe (None where it has left the world).
        decision: the expert's decision at the keyframe.
        meta_action: the ego's meta-action label (from its simulated future).
        ego_front_m: the ego's front bumper ahead of the ego-frame origin; "in front" starts there.
    """
    vehicles = [a for a in agents if a.category.startswith("vehicle.")]
    local = {
        a.instance_id: global_poses_to_local(np.array([[a.xyz[0], a.xyz[1], a.yaw_rad]]), ego_pose)[0] for a in agents
    }
    in_front = [
        a
        for a in vehicles
        if local[a.instance_id][0] > ego_front_m and np.hypot(*local[a.instance_id][:2]) <= FRONT_RANGE_M
    ]
    close = sorted(
        (a for a in agents if np.hypot(*local[a.instance_id][:2]) <= CLOSE_RANGE_M),
        key=lambda a: np.hypot(*local[a.instance_id][:2]),
    )
    perception = [
        {
            "Q": f"How many vehicles are in front of the ego car within {FRONT_RANGE_M:.0f} m?",
            "A": f"{_count(len(in_front))} in front of the ego car within {FRONT_RANGE_M:.0f} m.",
        }
    ]
    if decision.ahead_id is not None:
        ahead = next((a for a in agents if a.instance_id == decision.ahead_id), None)
        noun = _noun(ahead.category) if ahead is not None else "vehicle"
        answer = f"A {noun} {decision.ahead_distance_m:.0f} m ahead, driving at {decision.ahead_speed_mps:.0f} m/s."
        if noun == "barrier":
            answer = f"A barrier {decision.ahead_distance_m:.0f} m ahead."
    else:
        answer = "There is no vehicle on the ego car's path ahead."
    perception.append({"Q": "What is the closest object ahead of the ego car on its path?", "A": answer})
    if close:
        parts = [
            f"a {_noun(a.category)} {_where(*local[a.instance_id][:2])} at {np.hypot(*local[a.instance_id][:2]):.0f} m"
            for a in close[:4]
        ]
        answer = "; ".join(parts)
        answer = answer[0].upper() + answer[1:] + "."
    else:
        answer = f"There are no objects within {CLOSE_RANGE_M:.0f} m of the ego car."
    perception.append({"Q": f"What objects are within {CLOSE_RANGE_M:.0f} m of the ego car, and where?", "A": answer})

    prediction = []
    targets = []
    if decision.ahead_id is not None:
        targets.append(decision.ahead_id)
    others = sorted(vehicles, key=lambda a: np.hypot(*local[a.instance_id][:2]))
    for a in others:
        if a.instance_id not in targets and np.hypot(*local[a.instance_id][:2]) <= PREDICT_RANGE_M:
            targets.append(a.instance_id)
            break
    by_id = {a.instance_id: a for a in agents}
    for vid in targets:
        a = by_id.get(vid)
        if a is None or not a.category.startswith("vehicle."):
            continue
        action = agent_future_action(a, futures.get(vid, ()))
        if action is None:
            continue
        speed, direction = (p.strip() for p in action.split(","))
        x, y = local[vid][:2]
        where = _where(x, y)
        what = f"the {_noun(a.category)} {np.hypot(x, y):.0f} m {where}"
        verb = (
            "stay stopped"
            if speed == "stop" and a.speed_mps < 0.5
            else f"{_SPEED_VERB[speed]} and {_DIR_VERB[direction]}"
        )
        if speed == "stop" and a.speed_mps >= 0.5:
            verb = "stop"
        prediction.append({"Q": f"What will {what} do in the next 3 seconds?", "A": f"It will {verb}."})

    planning = [
        {"Q": "What should the ego car do?", "A": f"{meta_action_sentence(meta_action)} {decision.explanation}"},
        {"Q": "Why does the ego car behave this way?", "A": decision.explanation},
    ]
    if decision.reason in ("yielding", "stopping") or (
        decision.reason == "following" and (decision.lead_distance_m or 99) < 20
    ):
        safe = f"No. {decision.explanation}"
    elif decision.accel_mps2 < -0.5:
        safe = f"No, the ego car needs to slow down. {decision.explanation}"
    else:
        safe = "Yes, nothing ahead requires the ego car to slow down."
    planning.append({"Q": "Is it safe for the ego car to accelerate now?", "A": safe})

    speed, direction = (p.strip() for p in meta_action.split(","))
    state = f"The ego vehicle {speed_words(ego_speed_mps)}"
    behavior = [
        {
            "Q": "Predict the behavior of the ego vehicle.",
            "A": f"The ego vehicle is {_EGO_DIR[direction]}. {state} and is {_EGO_SPEED[speed]}.",
        }
    ]
    return {"perception": perception, "prediction": prediction, "planning": planning, "behavior": behavior}
