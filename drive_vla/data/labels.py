"""Language labels derived from trajectories: command (nuScenes 2 m rule), meta-action and its sentence, instruction.

These rules are the single owner of label arithmetic; the embedded world, the reader and the evaluation
all call them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from drive_vla.types import Command

COMMAND_LATERAL_THRESHOLD_M = 2.0  # nuScenes/ST-P3 rule on the last valid future point

SPEED_ACTIONS = ("accelerate", "keep speed", "decelerate", "stop")
DIRECTION_ACTIONS = ("straight", "left", "right")
META_ACTIONS = tuple(f"{s}, {d}" for s in SPEED_ACTIONS for d in DIRECTION_ACTIONS)

# Sentence of each meta-action half: "keep speed, straight" -> "Keep speed and go straight."; a stop keeps
# its direction ("Stop, heading left.") so that every sentence maps back to exactly one label.
_SPEED_SENTENCE = {"accelerate": "Accelerate", "keep speed": "Keep speed", "decelerate": "Slow down", "stop": "Stop"}
_DIRECTION_SENTENCE = {"straight": "go straight", "left": "turn left", "right": "turn right"}

INSTRUCTIONS = {
    Command.LEFT: "turn left at the next intersection",
    Command.RIGHT: "turn right at the next intersection",
    Command.STRAIGHT: "keep following the road",
}


def command_from_trajectory(future_xy: np.ndarray, mask: np.ndarray | None = None) -> Command:
    """The nuScenes planning command from future ego-frame positions (T, 2) (x forward, y left).

    The rule (ST-P3, UniAD, VAD) reads the lateral offset of the last valid future point in the LiDAR
    frame (x right): >= 2 m -> RIGHT, <= -2 m -> LEFT, else STRAIGHT. In the ego frame (y left) the
    signs flip. With no valid point the command is STRAIGHT.
    """
    xy = np.asarray(future_xy, dtype=np.float64).reshape(-1, 2)
    valid = np.ones(len(xy), dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    if not valid.any():
        return Command.STRAIGHT
    lateral_left = xy[np.flatnonzero(valid)[-1], 1]
    if lateral_left <= -COMMAND_LATERAL_THRESHOLD_M:
        return Command.RIGHT
    if lateral_left >= COMMAND_LATERAL_THRESHOLD_M:
        return Command.LEFT
    return Command.STRAIGHT


def speed_action(speed_now_mps: float, future_xy: np.ndarray, dt_s: float = 0.5, mask: np.ndarray | None = None) -> str:
    """accelerate / keep speed / decelerate / stop from the current speed and the future path.

    Uses the mean speed over the first 1.5 s of the future against the current speed: a change beyond
    max(1 m/s, 15 %) is accelerate/decelerate; a mean speed below 0.5 m/s is stop.
    """
    xy = np.asarray(future_xy, dtype=np.float64).reshape(-1, 2)
    valid = np.ones(len(xy), dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    pts = np.concatenate([np.zeros((1, 2)), xy[: min(3, len(xy))]])
    n = int(valid[:3].sum()) if len(valid) else 0
    if n == 0:
        return "keep speed"
    steps = np.linalg.norm(np.diff(pts[: n + 1], axis=0), axis=1) / dt_s
    future_speed = float(steps.mean())
    if future_speed < 0.5:
        return "stop"
    margin = max(1.0, 0.15 * abs(speed_now_mps))
    if future_speed > speed_now_mps + margin:
        return "accelerate"
    if future_speed < speed_now_mps - margin:
        return "decelerate"
    return "keep speed"


def meta_action(speed_now_mps: float, future_xy: np.ndarray, mask: np.ndarray | None = None, dt_s: float = 0.5) -> str:
    """Meta-action label "<speed action>, <direction>" (one of META_ACTIONS)."""
    direction = {Command.LEFT: "left", Command.RIGHT: "right", Command.STRAIGHT: "straight"}[
        command_from_trajectory(future_xy, mask)
    ]
    return f"{speed_action(speed_now_mps, future_xy, dt_s, mask)}, {direction}"


def instruction_for_command(command: Command | int | str) -> str:
    """A default instruction sentence for a navigation command."""
    return INSTRUCTIONS[Command.parse(command)]


def language_texts(instruction: str, explanation: str | None, qa: Sequence[tuple[str, str]]) -> list[str]:
    """The language of one sample as a flat list: instruction, explanation, then each QA question and
    answer; empty strings are left out (e.g. to fit a text tokenizer)."""
    texts = [instruction, explanation or "", *(t for pair in qa for t in pair)]
    return [t for t in texts if t and t.strip()]


def _split_meta_action(meta: str) -> tuple[str, str]:
    parts = [p.strip() for p in str(meta).split(",")]
    if len(parts) != 2 or parts[0] not in SPEED_ACTIONS or parts[1] not in DIRECTION_ACTIONS:
        raise ValueError(f"meta_action: got {meta!r}, expected one of {list(META_ACTIONS)}")
    return parts[0], parts[1]


def meta_action_sentence(meta: str) -> str:
    """The sentence of a meta-action label: "keep speed, straight" -> "Keep speed and go straight.",
    "decelerate, left" -> "Slow down and turn left.", "stop, right" -> "Stop, heading right."

    Raises:
        ValueError: ``meta`` is not one of META_ACTIONS.
    """
    speed, direction = _split_meta_action(meta)
    if speed == "stop":
        return f"Stop, heading {direction}."
    return f"{_SPEED_SENTENCE[speed]} and {_DIRECTION_SENTENCE[direction]}."


_SENTENCE_TO_META = {meta_action_sentence(m).lower(): m for m in META_ACTIONS}


def meta_action_from_text(text: str | None) -> str | None:
    """The meta-action label whose sentence (see meta_action_sentence) occurs in ``text``, else None.

    The sentence at the start of the text wins; otherwise the earliest one anywhere in it. Matching
    ignores case and repeated whitespace; a sentence must be a whole phrase (not inside a longer word).
    """
    if not text:
        return None
    norm = " ".join(text.lower().split())
    best: tuple[int, str] | None = None
    for sentence, meta in _SENTENCE_TO_META.items():
        start = norm.find(sentence)
        while start > 0 and norm[start - 1].isalnum():  # e.g. "nonstop, heading left." is not a stop
            start = norm.find(sentence, start + 1)
        if start >= 0 and (best is None or start < best[0]):
            best = (start, meta)
    return None if best is None else best[1]
