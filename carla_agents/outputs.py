"""What the CARLA agent writes: Bench2Drive's per-frame metric_info.json and the per-frame rationale JSONL."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from drive_vla.types import Plan


def _xyz(v: Any) -> list[float]:
    return [float(v.x), float(v.y), float(v.z)]


def metric_info_entry(acceleration: Any, angular_velocity: Any, transform: Any) -> dict[str, list[float]]:
    """One frame of Bench2Drive's metric_info.json from CARLA values (carla.Vector3D, carla.Transform).

    Keys as Bench2Drive's tools/efficiency_smoothness_benchmark.py reads them: acceleration,
    angular_velocity (deg/s, as CARLA reports it), forward_vector, right_vector, location, and rotation as
    [roll, pitch, yaw] degrees. All in CARLA's world frame.
    """
    rot = transform.rotation
    return {
        "acceleration": _xyz(acceleration),
        "angular_velocity": _xyz(angular_velocity),
        "forward_vector": _xyz(transform.get_forward_vector()),
        "right_vector": _xyz(transform.get_right_vector()),
        "location": _xyz(transform.location),
        "rotation": [float(rot.roll), float(rot.pitch), float(rot.yaw)],
    }


def metric_info_from_actor(actor: Any) -> dict[str, list[float]]:
    """metric_info_entry of a live carla.Actor."""
    return metric_info_entry(actor.get_acceleration(), actor.get_angular_velocity(), actor.get_transform())


class MetricInfoWriter:
    """Collects per-frame metric info and (re)writes ``<folder>/metric_info.json`` every ``flush_every`` frames."""

    def __init__(self, folder: Path, flush_every: int = 100) -> None:
        self.path = Path(folder) / "metric_info.json"
        self.flush_every = int(flush_every)
        self.frames: dict[str, dict[str, list[float]]] = {}

    def add(self, frame: int, entry: dict[str, list[float]]) -> None:
        self.frames[str(int(frame))] = entry
        if len(self.frames) % self.flush_every == 0:
            self.flush()

    def flush(self) -> None:
        if not self.frames:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self.frames))
        tmp.replace(self.path)


def _finite(value: Any) -> Any:
    """JSON-safe copy: NaN/inf become None (JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def plan_record(plan: Plan, decimals: int = 3) -> dict[str, Any]:
    """A compact JSON form of a Plan (waypoints rounded) for the rationale log."""
    d = plan.to_dict()
    traj = d["trajectory"]
    traj["xy"] = [[round(float(x), decimals), round(float(y), decimals)] for x, y in traj["xy"]]
    traj["yaw_rad"] = [round(float(v), decimals) for v in traj["yaw_rad"]]
    return d


class RationaleLog:
    """Append-only JSONL, one record per frame; flushed per line so a crash keeps what was written."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(_finite(record)) + "\n")
        self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()
