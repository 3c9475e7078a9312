"""The CARLA sensor rig: the nuScenes-like six cameras plus speedometer, IMU and GNSS, and its validation.

Sensor specs are the dicts the CARLA Leaderboard reads from ``agent.sensors()``: positions in CARLA's
vehicle frame (x forward, y right, z up, metres), angles in degrees (yaw clockwise seen from above,
pitch positive looking up). The cameras come from ``drive_vla.geometry.NUSCENES_RIG`` converted through
geometry, so the CARLA agent, the CARLA env and the embedded world share one rig.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from drive_vla.geometry import (
    NUSCENES_IMAGE_WH,
    NUSCENES_RIG,
    camera_rotation,
    carla_to_ego_frame,
    ego_frame_to_carla,
    make_transform,
)
from drive_vla.types import CAMERA_NAMES

SPEED_ID = "SPEED"
IMU_ID = "IMU"
GNSS_ID = "GPS"
CONTROL_RATE_HZ = 20  # the leaderboard ticks CARLA at 20 Hz

# Leaderboard 2.x SENSORS-track limits (leaderboard/autoagents/agent_wrapper.py, SENSORS_LIMITS).
MAX_SENSOR_RADIUS_M = 3.0
SENSOR_LIMITS = {
    "sensor.camera.rgb": 8,
    "sensor.lidar.ray_cast": 2,
    "sensor.other.radar": 4,
    "sensor.other.gnss": 1,
    "sensor.other.imu": 1,
    "sensor.speedometer": 1,
    "sensor.opendrive_map": 1,
}
POSE_KEYS = ("x", "y", "z", "roll", "pitch", "yaw")


class SensorSpecError(ValueError):
    """A sensor list the leaderboard would reject."""


def horizontal_fov_deg(focal_px: float, width_px: int = NUSCENES_IMAGE_WH[0]) -> float:
    """Horizontal field of view of a pinhole camera, degrees: 2 atan(W / 2f)."""
    return math.degrees(2.0 * math.atan(width_px / (2.0 * focal_px)))


def camera_specs(
    width: int = NUSCENES_IMAGE_WH[0],
    height: int = NUSCENES_IMAGE_WH[1],
    ego_origin_in_vehicle_m: Sequence[float] = (0.0, 0.0, 0.0),
) -> list[dict[str, Any]]:
    """The six nuScenes cameras as leaderboard camera specs (ids are the nuScenes channel names).

    Args:
        width, height: image size in pixels; the FOV comes from the rig's focal length at 1600 px, so
            any size keeps the nuScenes field of view.
        ego_origin_in_vehicle_m: where the canonical ego origin sits in the CARLA vehicle frame, given in
            canonical axes (x forward, y left, z up). (0, 0, 0): the ego frame is the actor's frame.
    """
    if width <= 0 or height <= 0:
        raise SensorSpecError(f"camera size: got {width}x{height}, expected positive width and height")
    ox, oy, oz = (float(v) for v in ego_origin_in_vehicle_m)
    specs = []
    for mount in NUSCENES_RIG:
        mx, my, mz = mount.xyz_m
        x, y, z, yaw_deg = ego_frame_to_carla(mx + ox, my + oy, mz + oz, math.radians(mount.yaw_deg))
        specs.append(
            {
                "type": "sensor.camera.rgb",
                "x": round(x, 4),
                "y": round(y, 4),
                "z": round(z, 4),
                "roll": 0.0,
                # the rig's pitch is positive looking down; CARLA's is positive looking up
                "pitch": 0.0 - float(mount.pitch_deg) + 0.0,  # + 0.0 turns -0.0 into 0.0
                "yaw": round(yaw_deg, 4) + 0.0,
                "width": int(width),
                "height": int(height),
                "fov": round(horizontal_fov_deg(mount.focal_px), 4),
                "id": mount.name,
            }
        )
    return specs


def sensor_specs(
    width: int = NUSCENES_IMAGE_WH[0],
    height: int = NUSCENES_IMAGE_WH[1],
    ego_origin_in_vehicle_m: Sequence[float] = (0.0, 0.0, 0.0),
) -> list[dict[str, Any]]:
    """Cameras plus speedometer, IMU and GNSS (at the vehicle origin)."""
    at_origin = {"x": 0.0, "y": 0.0, "z": 0.0, "roll": 0.0, "pitch": 0.0, "yaw": 0.0}
    return [
        *camera_specs(width, height, ego_origin_in_vehicle_m),
        {"type": "sensor.speedometer", "reading_frequency": CONTROL_RATE_HZ, "id": SPEED_ID},
        {"type": "sensor.other.imu", **at_origin, "id": IMU_ID},
        {"type": "sensor.other.gnss", **at_origin, "id": GNSS_ID},
    ]


def camera_intrinsics(spec: Mapping[str, Any]) -> np.ndarray:
    """(3, 3) pinhole matrix of a CARLA camera spec: f = W / (2 tan(fov / 2)), square pixels.

    The principal point is the image centre in drive-vla's pixel-centre convention, ((W-1)/2, (H-1)/2),
    as in geometry.CameraMount.intrinsics; at the rig's 16:9 aspect this equals the rig's own matrix.
    """
    w, h, fov = float(spec["width"]), float(spec["height"]), float(spec["fov"])
    f = w / (2.0 * math.tan(math.radians(fov) / 2.0))
    return np.array([[f, 0.0, (w - 1.0) / 2.0], [0.0, f, (h - 1.0) / 2.0], [0.0, 0.0, 1.0]])


def camera_extrinsics(
    spec: Mapping[str, Any], ego_origin_in_vehicle_m: Sequence[float] = (0.0, 0.0, 0.0)
) -> np.ndarray:
    """(4, 4) camera-to-ego transform (OpenCV camera axes) of a CARLA camera spec; inverse of camera_specs."""
    if abs(float(spec.get("roll", 0.0))) > 1e-9:
        raise SensorSpecError(f"camera {spec.get('id')!r} roll: got {spec['roll']!r}, expected 0 (the rig has no roll)")
    x, y, z, yaw_rad = carla_to_ego_frame(spec["x"], spec["y"], spec["z"], spec["yaw"])
    ox, oy, oz = (float(v) for v in ego_origin_in_vehicle_m)
    pitch_down_rad = -math.radians(float(spec["pitch"]))
    return make_transform(camera_rotation(yaw_rad, pitch_down_rad), (x - ox, y - oy, z - oz))


def rig_calibration(specs: Sequence[Mapping[str, Any]], ego_origin_in_vehicle_m: Sequence[float] = (0.0, 0.0, 0.0)):
    """Intrinsics and cam2ego extrinsics (float32) per camera name, from the camera specs."""
    cams = {s["id"]: s for s in specs if s["type"] == "sensor.camera.rgb"}
    missing = [c for c in CAMERA_NAMES if c not in cams]
    if missing:
        raise SensorSpecError(f"sensor specs: missing cameras {missing}, expected ids {list(CAMERA_NAMES)}")
    intr = {c: camera_intrinsics(cams[c]).astype(np.float32) for c in CAMERA_NAMES}
    extr = {c: camera_extrinsics(cams[c], ego_origin_in_vehicle_m).astype(np.float32) for c in CAMERA_NAMES}
    return intr, extr


def validate_sensor_spec(specs: Sequence[Mapping[str, Any]], track: str = "SENSORS") -> None:
    """Raise SensorSpecError where the leaderboard's checks would reject ``specs``.

    Checks: unique ids; known sensor types; no OpenDRIVE map on the SENSORS track; per-type counts
    (<= 8 RGB cameras, 1 GNSS, 1 IMU, ...); every sensor with a position within 3 m of the vehicle
    origin; cameras carry a positive width, height and a FOV in (0, 180).
    """
    ids = Counter(str(s.get("id")) for s in specs)
    dup = sorted(i for i, n in ids.items() if n > 1)
    if dup:
        raise SensorSpecError(f"sensor ids: got duplicates {dup}, expected unique ids")
    counts: Counter[str] = Counter()
    for s in specs:
        sid, kind = s.get("id"), s.get("type")
        if not sid:
            raise SensorSpecError(f"sensor {s!r}: missing 'id', expected a unique name")
        if kind not in SENSOR_LIMITS:
            raise SensorSpecError(f"sensor {sid!r} type: got {kind!r}, expected one of {sorted(SENSOR_LIMITS)}")
        if track == "SENSORS" and kind == "sensor.opendrive_map":
            raise SensorSpecError(f"sensor {sid!r}: 'sensor.opendrive_map' is not allowed on the SENSORS track")
        counts[kind] += 1
        if all(k in s for k in ("x", "y", "z")):
            radius = math.sqrt(float(s["x"]) ** 2 + float(s["y"]) ** 2 + float(s["z"]) ** 2)
            if radius > MAX_SENSOR_RADIUS_M:
                raise SensorSpecError(
                    f"sensor {sid!r} position: {radius:.2f} m from the vehicle, expected <= {MAX_SENSOR_RADIUS_M} m"
                )
        if kind in ("sensor.camera.rgb", "sensor.lidar.ray_cast", "sensor.other.radar", "sensor.other.imu"):
            absent = [k for k in POSE_KEYS if k not in s]
            if absent:
                raise SensorSpecError(f"sensor {sid!r}: missing pose keys {absent}")
        if kind == "sensor.camera.rgb":
            if int(s.get("width", 0)) <= 0 or int(s.get("height", 0)) <= 0:
                raise SensorSpecError(f"camera {sid!r} size: got {s.get('width')}x{s.get('height')}, expected > 0")
            if not 0.0 < float(s.get("fov", 0.0)) < 180.0:
                raise SensorSpecError(f"camera {sid!r} fov: got {s.get('fov')!r}, expected degrees in (0, 180)")
    for kind, n in counts.items():
        if n > SENSOR_LIMITS[kind]:
            raise SensorSpecError(f"sensor count: {n} x {kind!r}, expected at most {SENSOR_LIMITS[kind]}")
