"""The DriveLM label structure: per-sample labels (QA, instruction, command, meta-action, explanation, control).

File layout (DriveLM's, extended with drive-vla's per-sample fields)::

    {scene_token: {"scene_description": str,
                   "key_frames": {sample_token: {"QA": {"perception"|"prediction"|"planning"|"behavior":
                                                        [{"Q": str, "A": str, ...}]},
                                                 "instruction": str, "command": "LEFT"|"RIGHT"|"STRAIGHT",
                                                 "meta_action": str, "explanation": str,
                                                 "control": {"steer", "throttle", "brake"},
                                                 "route_target": [[x, y], [x, y]],
                                                 "speed_limit_mps": float, "junction_m": float}}}}
(``route_target``: the next route points in the sample's ego frame, metres; ``speed_limit_mps``: the road's
speed limit there; ``junction_m``: the distance along the route to the next junction; embedded data only.)
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from drive_vla.types import ROUTE_TARGET_POINTS, Command, check_junction, check_route_target, check_speed_limit

LABEL_KEYS = (
    "QA",
    "instruction",
    "command",
    "meta_action",
    "explanation",
    "control",
    "route_target",
    "speed_limit_mps",
    "junction_m",
)
QA_KINDS = ("perception", "prediction", "planning", "behavior")


def check_label(label: dict[str, Any], where: str = "label") -> None:
    """Raise ValueError unless ``label`` is a per-sample label dict (the inner dict of ``key_frames``)."""
    if not isinstance(label, dict):
        raise ValueError(f"{where}: got {type(label).__name__}, expected a dict")
    unknown = sorted(set(label) - set(LABEL_KEYS))
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}, expected keys among {list(LABEL_KEYS)}")
    for key in ("instruction", "meta_action", "explanation"):
        if key in label and not isinstance(label[key], str):
            raise ValueError(f"{where}.{key}: got {label[key]!r}, expected a string")
    if "command" in label and label["command"] not in [c.name for c in Command]:
        raise ValueError(f"{where}.command: got {label['command']!r}, expected one of {[c.name for c in Command]}")
    if "control" in label:
        ctrl = label["control"]
        if not isinstance(ctrl, dict) or set(ctrl) != {"steer", "throttle", "brake"}:
            raise ValueError(f"{where}.control: got {ctrl!r}, expected {{'steer', 'throttle', 'brake'}} numbers")
    if "route_target" in label:
        route_target(label, where)
    if "speed_limit_mps" in label:
        speed_limit(label, where)
    if "junction_m" in label:
        junction(label, where)
    qa = label.get("QA", {})
    if not isinstance(qa, dict):
        raise ValueError(f"{where}.QA: got {qa!r}, expected {{kind: [{{'Q': str, 'A': str}}]}}")
    for kind, pairs in qa.items():
        if kind not in QA_KINDS:
            raise ValueError(f"{where}.QA: got kind {kind!r}, expected one of {list(QA_KINDS)}")
        for i, pair in enumerate(pairs):
            if not isinstance(pair, dict) or not isinstance(pair.get("Q"), str) or not isinstance(pair.get("A"), str):
                raise ValueError(f"{where}.QA.{kind}[{i}]: got {pair!r}, expected {{'Q': str, 'A': str}}")


def _number(label: dict[str, Any], key: str, where: str, check, expected: str) -> float | None:
    """``label[key]`` as a float checked by ``check(name, value)``, or None where the label has no such key."""
    raw = label.get(key)
    if raw is None:
        return None
    name = f"{where}.{key}"
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        raise ValueError(f"{name}: got {raw!r}, expected {expected}")
    check(name, raw)
    return float(raw)


def speed_limit(label: dict[str, Any], where: str = "label") -> float | None:
    """A label's speed limit in m/s, or None where it has none (nuScenes).

    Raises:
        ValueError: naming ``<where>.speed_limit_mps`` when it is not a finite speed in (0, 100] m/s.
    """
    return _number(label, "speed_limit_mps", where, check_speed_limit, "a speed limit in m/s")


def junction(label: dict[str, Any], where: str = "label") -> float | None:
    """A label's distance to the next junction along the route in metres, or None where it has none (nuScenes).

    Raises:
        ValueError: naming ``<where>.junction_m`` when it is not a finite distance in [0, JUNCTION_HORIZON_M].
    """
    return _number(label, "junction_m", where, check_junction, "a distance in metres")


def route_target(label: dict[str, Any], where: str = "label") -> np.ndarray | None:
    """A label's route points as (ROUTE_TARGET_POINTS, 2) float32, or None where it has none (nuScenes).

    Raises:
        ValueError: naming ``<where>.route_target`` when the points are not finite, nearby [x, y] pairs.
    """
    raw = label.get("route_target")
    if raw is None:
        return None
    name = f"{where}.route_target"
    try:
        arr = np.asarray(raw, dtype=np.float32)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: got {raw!r}, expected {ROUTE_TARGET_POINTS} points [x, y] in metres") from None
    check_route_target(name, arr)
    return arr


# DriveLM's behavior answers -> drive-vla meta-actions. DriveLM derives them from the future path: one
# sentence on steering ("going straight", "slightly steering to the left", "steering to the right") and one
# on speed ("not moving", "driving slowly", "driving with normal speed", "driving fast", "driving very
# fast"). Steering maps to the direction; "not moving" maps to "stop"; explicit changes ("accelerating",
# "decelerating", "slowing down", "braking") map to accelerate/decelerate; a speed magnitude ("slowly",
# "normal speed", "fast") says nothing about a change and maps to "keep speed".
_BEHAVIOR_DIRECTION = (("straight", "straight"), ("left", "left"), ("right", "right"))
_BEHAVIOR_SPEED = (
    ("not moving", "stop"),
    ("stopped", "stop"),
    ("stationary", "stop"),
    ("accelerat", "accelerate"),
    ("speeding up", "accelerate"),
    ("decelerat", "decelerate"),
    ("slowing down", "decelerate"),
    ("braking", "decelerate"),
    ("driving", "keep speed"),
)


def behavior_meta_action(answer: str) -> str | None:
    """The meta-action ("<speed>, <direction>") of a DriveLM behavior answer, or None when it names no
    steering or no speed phrase (then the reader's trajectory rule gives the meta-action).

    "The ego vehicle is going straight. The ego vehicle is driving fast." -> "keep speed, straight";
    "... slightly steering to the left. ... is not moving." -> "stop, left".
    """
    text = " ".join(answer.lower().split())
    direction = next((d for word, d in _BEHAVIOR_DIRECTION if word in text), None)
    speed = next((s for phrase, s in _BEHAVIOR_SPEED if phrase in text), None)
    if direction is None or speed is None:
        return None
    return f"{speed}, {direction}"


def behavior_labels(pairs: list[tuple[str, str, str]]) -> dict[str, str]:
    """Explanation and meta-action labels of one frame from its DriveLM behavior pairs (kind, Q, A).

    The first behavior answer is the explanation (DriveLM has one per keyframe); its meta-action comes
    from ``behavior_meta_action``. Frames without a behavior pair get no labels.
    """
    answers = [a for kind, _, a in pairs if kind == "behavior" and a and a.strip()]
    if not answers:
        return {}
    out = {"explanation": answers[0].strip()}
    meta = behavior_meta_action(answers[0])
    if meta is not None:
        out["meta_action"] = meta
    return out


def qa_pairs(frame: dict[str, Any]) -> list[tuple[str, str]]:
    """(question, answer) pairs of one key frame, in DriveLM's kind order."""
    qa = frame.get("QA") or {}
    return [(str(p["Q"]), str(p["A"])) for kind in QA_KINDS for p in qa.get(kind, []) if "Q" in p and "A" in p]


def key_frames(data: Any) -> dict[str, dict[str, Any]]:
    """sample token -> key-frame dict of a parsed DriveLM-structured file."""
    out: dict[str, dict[str, Any]] = {}
    if not isinstance(data, dict):
        raise ValueError(f"DriveLM data: got {type(data).__name__}, expected {{scene_token: {{'key_frames': ...}}}}")
    for scene in data.values():
        frames = scene.get("key_frames") if isinstance(scene, dict) else None
        if not isinstance(frames, dict):
            raise ValueError("DriveLM data: a scene entry has no 'key_frames' mapping")
        out.update(frames)
    return out


def load_key_frames(path: str | os.PathLike, what: str = "DriveLM file") -> dict[str, dict[str, Any]]:
    """Read a DriveLM-structured JSON file; ValueError naming the path if missing or malformed."""
    p = Path(path)
    try:
        return key_frames(json.loads(p.read_text()))
    except FileNotFoundError:
        raise ValueError(f"{what}: {p} does not exist") from None
    except (json.JSONDecodeError, ValueError) as exc:
        raise ValueError(f"{what}: {p} is not DriveLM-structured JSON ({exc})") from None
