"""nuScenes CAN-bus messages: unit conversions between drive-vla values and the real message fields.

The nuScenes CAN bus expansion (read by ``nuscenes.can_bus.can_bus_api.NuScenesCanBus``) stores one JSON
list per scene and message, ``can_bus/<scene>_<message>.json``. drive-vla writes and reads two of them:

``pose`` (50 Hz on the real car; one message per keyframe in datasets we write):
    ``utime`` (us), ``pos`` (3, m, global), ``orientation`` (4, w x y z, ego to global),
    ``vel`` (3, m/s, ego frame), ``accel`` (3, m/s^2, ego frame), ``rotation_rate`` (3, rad/s, ego frame).
``vehicle_monitor`` (2 Hz):
    ``utime``, ``vehicle_speed`` (km/h, 0.01 resolution), ``steering`` (steering-wheel angle, degrees,
    0.1 resolution, range [-780, 779.9]), ``steering_speed`` (deg/s), ``throttle`` (pedal, integer 0..1000),
    ``brake`` (brake pressure, bar, integer 0..126), ``brake_switch`` (1 not pressed, 2 pressed),
    ``yaw_rate`` (deg/s, 0.1 resolution), ``gear_position`` (7 = drive).

Normalised control mapping (ours, documented here and used in both directions):
    steer    = steering_deg / STEERING_WHEEL_RANGE_DEG, positive LEFT (counter-clockwise wheel, as the
               devkit maintainers confirmed for the steering feedback sign in nuscenes-devkit issue #371),
               clipped to [-1, 1];
    throttle = throttle_raw / THROTTLE_RAW_MAX;
    brake    = brake_bar / BRAKE_RAW_MAX_BAR.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

STEERING_WHEEL_RANGE_DEG = 780.0  # full scale of vehicle_monitor.steering
THROTTLE_RAW_MAX = 1000.0  # vehicle_monitor.throttle range 0..1000
BRAKE_RAW_MAX_BAR = 126.0  # vehicle_monitor.brake range 0..126 bar
KMH_PER_MPS = 3.6

# Scene names the devkit's NuScenesCanBus accepts, and the scene numbers it refuses (it raises for these,
# as the real logs have no CAN data); a dataset we write must avoid them when it carries CAN messages.
SCENE_NAME_PATTERN = re.compile(r"^scene-\d{4}$")
CAN_BLACKLIST = frozenset(
    [161, 162, 163, 164, 165, 166, 167, 168, 170, 171, 172, 173, 174, 175, 176] + list(range(309, 315))
)


def scene_name(index: int) -> str:
    """The ``index``-th (0-based) scene name ``scene-NNNN`` the devkit's CAN-bus API accepts.

    Numbers start at 1 and skip the ones the devkit blacklists (it refuses CAN lookups for them).
    """
    if index < 0:
        raise ValueError(f"scene index: got {index}, expected >= 0")
    n = 0
    for number in range(1, 10000):
        if number in CAN_BLACKLIST:
            continue
        if n == index:
            return f"scene-{number:04d}"
        n += 1
    raise ValueError(f"scene index: got {index}, expected < {n} (four-digit scene names)")


def check_can_scene_name(name: str) -> None:
    """Raise ValueError unless the devkit's CAN-bus API can read messages of a scene called ``name``."""
    if not SCENE_NAME_PATTERN.match(name):
        raise ValueError(f"scene.name: got {name!r}, expected 'scene-NNNN' (the devkit's CAN-bus API requires it)")
    if int(name[-4:]) in CAN_BLACKLIST:
        raise ValueError(
            f"scene.name: got {name!r}, a number the devkit's CAN-bus API refuses ({sorted(CAN_BLACKLIST)}); "
            "use drive_vla.data.can_bus.scene_name(i)"
        )


@dataclass(frozen=True)
class CanRecord:
    """Ego CAN-bus state at one keyframe, in drive-vla units.

    Attributes:
        speed_mps: forward speed, m/s.
        steer: normalised steering in [-1, 1], positive LEFT (see the module docstring for the mapping).
        throttle: normalised throttle pedal in [0, 1].
        brake: normalised brake pressure in [0, 1].
        accel_mps2: (3,) acceleration in the ego frame (x forward, y left, z up), m/s^2.
        yaw_rate_rps: yaw rate, rad/s, counter-clockwise positive.
    """

    speed_mps: float
    steer: float = 0.0
    throttle: float = 0.0
    brake: float = 0.0
    accel_mps2: Sequence[float] = (0.0, 0.0, 0.0)
    yaw_rate_rps: float = 0.0

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        for name, lo, hi in (("speed_mps", -30.0, 100.0), ("steer", -1.0, 1.0), ("throttle", 0.0, 1.0)):
            _check_range(f"can.{name}", getattr(self, name), lo, hi)
        _check_range("can.brake", self.brake, 0.0, 1.0)
        _check_range("can.yaw_rate_rps", self.yaw_rate_rps, -10.0, 10.0)
        acc = np.asarray(self.accel_mps2, dtype=np.float64)
        if acc.shape != (3,) or not np.all(np.isfinite(acc)):
            raise ValueError(f"can.accel_mps2: got {self.accel_mps2!r}, expected 3 finite values (m/s^2, ego frame)")


def _check_range(name: str, value: Any, lo: float, hi: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name}: got {value!r}, expected a real number in [{lo}, {hi}]")
    if not math.isfinite(float(value)) or not lo <= float(value) <= hi:
        raise ValueError(f"{name}: got {value!r}, expected a finite number in [{lo}, {hi}]")


def pose_message(
    utime_us: int, translation: Sequence[float], rotation_wxyz: Sequence[float], can: CanRecord
) -> dict[str, Any]:
    """A ``pose`` message (real field names and units) for one keyframe."""
    return {
        "utime": int(utime_us),
        "pos": [float(v) for v in translation],
        "orientation": [float(v) for v in rotation_wxyz],
        "vel": [float(can.speed_mps), 0.0, 0.0],
        "accel": [float(v) for v in can.accel_mps2],
        "rotation_rate": [0.0, 0.0, float(can.yaw_rate_rps)],
    }


def vehicle_monitor_message(utime_us: int, can: CanRecord, prev: CanRecord | None, dt_s: float) -> dict[str, Any]:
    """A ``vehicle_monitor`` message (real field names, units and resolutions) for one keyframe."""
    steering_deg = round(float(can.steer) * STEERING_WHEEL_RANGE_DEG, 1)
    steering_speed = 0.0
    if prev is not None and dt_s > 0:
        steering_speed = round((steering_deg - float(prev.steer) * STEERING_WHEEL_RANGE_DEG) / dt_s, 1)
    brake_bar = int(round(float(can.brake) * BRAKE_RAW_MAX_BAR))
    return {
        "utime": int(utime_us),
        "vehicle_speed": round(abs(float(can.speed_mps)) * KMH_PER_MPS, 2),
        "steering": steering_deg,
        "steering_speed": steering_speed,
        "throttle": int(round(float(can.throttle) * THROTTLE_RAW_MAX)),
        "brake": brake_bar,
        "brake_switch": 2 if brake_bar > 0 else 1,
        "yaw_rate": round(math.degrees(float(can.yaw_rate_rps)), 1),
        "gear_position": 7,
    }


def steer_from_steering_deg(steering_deg: float) -> float:
    """vehicle_monitor.steering (degrees, positive left) -> normalised steer in [-1, 1], positive left."""
    return float(np.clip(float(steering_deg) / STEERING_WHEEL_RANGE_DEG, -1.0, 1.0))


def control_from_vehicle_monitor(msg: dict[str, Any]) -> tuple[float, float, float]:
    """(steer, throttle, brake) normalised from a vehicle_monitor message."""
    steer = steer_from_steering_deg(msg.get("steering", 0.0))
    throttle = float(np.clip(float(msg.get("throttle", 0.0)) / THROTTLE_RAW_MAX, 0.0, 1.0))
    brake = float(np.clip(float(msg.get("brake", 0.0)) / BRAKE_RAW_MAX_BAR, 0.0, 1.0))
    return steer, throttle, brake


def nearest_message(messages: Sequence[dict[str, Any]], utimes: np.ndarray, utime_us: int, max_gap_us: int):
    """The message closest in time to ``utime_us`` (``utimes`` sorted), or None if none is within the gap."""
    if len(messages) == 0:
        return None
    i = int(np.searchsorted(utimes, utime_us))
    best = None
    for j in (i - 1, i):
        if 0 <= j < len(messages) and (best is None or abs(utimes[j] - utime_us) < abs(utimes[best] - utime_us)):
            best = j
    if best is None or abs(int(utimes[best]) - int(utime_us)) > max_gap_us:
        return None
    return messages[best]
