"""The ActionTokenizer contract, plan <-> array conversion, headings from waypoints and tokenizer files.

An action tokenizer owns all arithmetic between a planned ego-frame Trajectory (FUTURE_STEPS waypoints
at 2 Hz) and a sequence of local token ids 0..vocab_size-1. The model maps local ids to LM ids; it never
repeats the arithmetic here. ``allowed_next`` is the grammar constrained decoding follows, and ``decode``
is total over it: every sequence the grammar allows decodes to a finite trajectory of FUTURE_STEPS points.
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from drive_vla.config import ConfigError, from_dict, to_dict
from drive_vla.types import FUTURE_STEPS, STEP_DT_S, Trajectory

ACTION_TOKENIZER_FILE = "action_tokenizer.json"
FORMAT_VERSION = 1
# Below this step length (0.4 m/s at 2 Hz) the direction of travel is noise: the heading is held.
HEADING_MIN_STEP_M = 0.2


class TokenizerFileError(FileNotFoundError, ValueError):
    """A tokenizer directory lacks a file it needs (also a ValueError: the path given was bad input)."""


def plan_xy(traj: Any, name: str = "trajectory") -> np.ndarray:
    """The (FUTURE_STEPS, 2) float64 waypoints of a complete plan, checked.

    Args:
        traj: a Trajectory, or an array-like of shape (FUTURE_STEPS, 2) positions or (FUTURE_STEPS, 3)
            poses [x, y, yaw] in the ego frame, metres (a CPU torch tensor works).
        name: how the argument is called in error messages.

    Raises:
        ValueError: wrong length or shape, non-finite values, missing waypoints, or a time step other
            than STEP_DT_S.
    """
    if isinstance(traj, Trajectory):
        if len(traj) != FUTURE_STEPS:
            raise ValueError(f"{name}.xy: got {len(traj)} waypoints, expected {FUTURE_STEPS} (0.5 .. 3.0 s at 2 Hz)")
        if not traj.is_complete:
            raise ValueError(
                f"{name}.mask: got {traj.mask.tolist()}, expected all {FUTURE_STEPS} waypoints valid "
                "(tokenize only complete plans; mask the loss of incomplete ones)"
            )
        if not math.isclose(traj.dt_s, STEP_DT_S):
            raise ValueError(f"{name}.dt_s: got {traj.dt_s}, expected {STEP_DT_S}")
        xy = traj.xy
    else:
        try:
            xy = np.asarray(traj, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name}: got {type(traj).__name__}, expected a Trajectory or a (6, 2) array") from exc
        if xy.ndim != 2 or xy.shape[0] != FUTURE_STEPS or xy.shape[1] not in (2, 3):
            raise ValueError(
                f"{name}: got shape {xy.shape}, expected ({FUTURE_STEPS}, 2) positions or ({FUTURE_STEPS}, 3) poses"
            )
        xy = xy[:, :2]
    xy = np.asarray(xy, dtype=np.float64)
    if not np.all(np.isfinite(xy)):
        raise ValueError(f"{name}.xy: got non-finite values {xy.tolist()}, expected finite metres")
    return xy


def displacements(xy: np.ndarray) -> np.ndarray:
    """(T, 2) per-step displacements: waypoint k minus waypoint k-1, the first from the origin."""
    return np.diff(np.vstack([np.zeros((1, 2)), xy]), axis=0)


def headings_from_xy(xy: np.ndarray, min_step_m: float = HEADING_MIN_STEP_M) -> np.ndarray:
    """(T,) headings from the direction of travel, radians CCW.

    The heading of waypoint k is the direction of its displacement from waypoint k-1 (the first from the
    origin, where the ego heading is 0). Where a step is shorter than ``min_step_m`` (standing still) the
    previous heading is kept, so a stopped plan does not spin on quantisation noise.
    """
    yaw = np.zeros(len(xy), dtype=np.float64)
    prev = 0.0
    for k, (dx, dy) in enumerate(displacements(np.asarray(xy, dtype=np.float64))):
        if math.hypot(dx, dy) >= min_step_m:
            prev = math.atan2(dy, dx)
        yaw[k] = prev
    return yaw


def trajectory_from_xy(xy: np.ndarray) -> Trajectory:
    """A complete FUTURE_STEPS-point Trajectory (float32, dt STEP_DT_S) with headings from the travel direction."""
    xy = np.asarray(xy, dtype=np.float64)
    if xy.shape != (FUTURE_STEPS, 2) or not np.all(np.isfinite(xy)):
        # Unreachable from a tokenizer's decode; guards the totality promise against future edits.
        raise ValueError(f"decoded xy: got {xy.tolist()}, expected finite ({FUTURE_STEPS}, 2) metres")
    return Trajectory(
        xy=xy.astype(np.float32),
        yaw_rad=headings_from_xy(xy).astype(np.float32),
        mask=np.ones(FUTURE_STEPS, dtype=bool),
        dt_s=STEP_DT_S,
    )


def check_ids(ids: Any, vocab_size: int, name: str = "ids") -> list[int]:
    """Plain ints, each in 0..vocab_size-1; raises ValueError naming the position and value otherwise."""
    if isinstance(ids, (str, bytes)) or not hasattr(ids, "__iter__"):
        raise ValueError(f"{name}: got {type(ids).__name__}, expected a sequence of ints")
    out = []
    for i, v in enumerate(ids):
        if getattr(v, "ndim", None) == 0 and hasattr(v, "item"):  # numpy scalar or 0-d tensor
            v = v.item()
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError(f"{name}[{i}]: got {v!r}, expected an int token id")
        v = int(v)
        if not 0 <= v < vocab_size:
            raise ValueError(f"{name}[{i}]: got {v}, expected a local id in 0..{vocab_size - 1}")
        out.append(v)
    return out


def check_fit_range(name: str, value: Any) -> tuple[float, float]:
    """A finite (lo, hi) pair with lo < hi."""
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: got {value!r}, expected a pair (lo, hi)") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"{name}: got {value!r}, expected finite lo < hi")
    return lo, hi


def check_percentiles(name: str, value: Any) -> tuple[float, float]:
    lo, hi = check_fit_range(name, value)
    if not 0.0 <= lo < hi <= 100.0:
        raise ValueError(f"{name}: got {value!r}, expected 0 <= lo < hi <= 100")
    return lo, hi


def complete_plans(trajectories: Sequence[Any], name: str = "trajectories") -> np.ndarray:
    """(N, FUTURE_STEPS, 2) waypoints of the complete plans among ``trajectories`` (incomplete ones skipped)."""
    if isinstance(trajectories, (str, bytes, Trajectory)) or not hasattr(trajectories, "__iter__"):
        raise ValueError(f"{name}: got {type(trajectories).__name__}, expected a sequence of Trajectory")
    plans = []
    for i, t in enumerate(trajectories):
        if isinstance(t, Trajectory) and len(t) == FUTURE_STEPS and not t.is_complete:
            continue
        plans.append(plan_xy(t, f"{name}[{i}]"))
    if not plans:
        raise ValueError(f"{name}: got no complete {FUTURE_STEPS}-waypoint plan, expected at least one to fit on")
    return np.stack(plans)


def percentile_range(
    values: np.ndarray, percentiles: tuple[float, float], margin: float, min_span: float
) -> tuple[float, float]:
    """[p_lo - margin*span, p_hi + margin*span] of ``values``, widened about its centre to at least ``min_span``."""
    lo, hi = (float(v) for v in np.percentile(values, percentiles))
    span = hi - lo
    lo, hi = lo - margin * span, hi + margin * span
    if hi - lo < min_span:
        mid = 0.5 * (lo + hi)
        lo, hi = mid - 0.5 * min_span, mid + 0.5 * min_span
    return lo, hi


def read_tokenizer_json(directory: str | Path, filename: str) -> dict[str, Any]:
    """The JSON payload ``directory/filename``; raises TokenizerFileError / ValueError naming the path."""
    path = Path(directory) / filename
    if not path.is_file():
        where = "does not exist" if not Path(directory).is_dir() else "holds no such file"
        raise TokenizerFileError(f"tokenizer file: {path}: directory {where}; expected a saved tokenizer there")
    try:
        payload = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"tokenizer file: {path} is not valid JSON: {exc}") from exc
    if not isinstance(payload, dict) or "type" not in payload:
        raise ValueError(f"tokenizer file: {path}: got no 'type' field, expected a saved tokenizer")
    version = payload.get("format_version")
    if version != FORMAT_VERSION:
        raise ValueError(f"{path}: format_version: got {version!r}, expected {FORMAT_VERSION}")
    return payload


def write_tokenizer_json(directory: str | Path, filename: str, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (plus format_version) as JSON, atomically; returns the file path."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    path = d / filename
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({**payload, "format_version": FORMAT_VERSION}, indent=2) + "\n")
    tmp.replace(path)
    return path


def build_config(cls: type, data: Any, where: str) -> Any:
    """``cls`` from a mapping, strictly (unknown or mistyped keys raise a ValueError naming them)."""
    try:
        return from_dict(cls, data)
    except ConfigError as exc:
        raise ValueError(f"{where}: {exc}") from exc


class ActionTokenizer(ABC):
    """Waypoint plan <-> local token ids; the single owner of that arithmetic.

    Subclasses set ``type_name`` (the ``"type"`` field of the saved JSON) and ``config_class`` (a
    dataclass whose every field has a default), hold ``self.config``, and implement the abstract members.
    """

    type_name: ClassVar[str]
    config_class: ClassVar[type]
    config: Any

    @property
    @abstractmethod
    def vocab_size(self) -> int:
        """Number of local ids; valid ids are 0..vocab_size-1."""

    @property
    @abstractmethod
    def max_tokens(self) -> int:
        """Upper bound on the number of tokens of one plan (encode and the grammar never exceed it)."""

    @property
    @abstractmethod
    def waypoint_bounds_m(self) -> np.ndarray:
        """(FUTURE_STEPS,) max Euclidean position error per waypoint after a round trip, for in-range plans."""

    @property
    def round_trip_bound_m(self) -> float:
        """Max per-waypoint position error (m) of decode(encode(plan)) for in-range plans after fit.

        float32 rounding of the output adds at most ~1e-5 m for positions within 100 m.
        """
        return float(np.max(self.waypoint_bounds_m))

    @abstractmethod
    def fit(self, trajectories: Sequence[Trajectory]) -> ActionTokenizer:
        """Fit ranges (and vocabulary) to training plans; incomplete plans are skipped. Returns self."""

    @abstractmethod
    def in_range(self, traj: Trajectory) -> bool:
        """Whether ``traj`` lies in the range where the round-trip bound holds (nothing is clipped)."""

    @abstractmethod
    def encode(self, traj: Trajectory) -> list[int]:
        """Local ids of a complete plan; out-of-range values are clipped. Raises ValueError on bad input."""

    @abstractmethod
    def decode(self, ids: Sequence[int]) -> Trajectory:
        """A finite FUTURE_STEPS-point Trajectory for every sequence the grammar allows."""

    @abstractmethod
    def allowed_next(self, prefix: Sequence[int]) -> tuple[list[int], bool]:
        """(ids that may follow ``prefix``, whether the plan may end after ``prefix``)."""

    @abstractmethod
    def _state(self) -> dict[str, Any]:
        """Fitted state beyond the config, JSON-ready."""

    @classmethod
    @abstractmethod
    def _from_saved(cls, config: Any, state: dict[str, Any], directory: Path) -> ActionTokenizer:
        """Rebuild from a saved config and state (and any extra files in ``directory``)."""

    def _save_extra(self, directory: Path) -> None:
        """Write files besides action_tokenizer.json (none by default)."""
        return None

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write ``directory/action_tokenizer.json`` (and any extra files); nothing is pickled."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        self._save_extra(d)
        write_tokenizer_json(
            d, ACTION_TOKENIZER_FILE, {"type": self.type_name, "config": to_dict(self.config), "state": self._state()}
        )
        return d

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> ActionTokenizer:
        """Load a tokenizer saved by ``save_pretrained``; on the base class, dispatch on the saved type."""
        payload = read_tokenizer_json(directory, ACTION_TOKENIZER_FILE)
        if cls is ActionTokenizer:
            from drive_vla.tokenizers.registry import tokenizer_class

            target = tokenizer_class(payload["type"])
        elif payload["type"] != cls.type_name:
            raise ValueError(
                f"{Path(directory) / ACTION_TOKENIZER_FILE}: type: got {payload['type']!r}, expected "
                f"{cls.type_name!r} for {cls.__name__} (load_action_tokenizer dispatches on the type)"
            )
        else:
            target = cls
        where = str(Path(directory) / ACTION_TOKENIZER_FILE)
        config = build_config(target.config_class, payload.get("config", {}), f"{where}: config")
        state = payload.get("state", {})
        if not isinstance(state, dict):
            raise ValueError(f"{where}: state: got {type(state).__name__}, expected a mapping")
        return target._from_saved(config, state, Path(directory))
