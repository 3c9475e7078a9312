"""Pure conversions from CARLA sensor data and poses to drive-vla types (images, ego state, history, Observation)."""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from carla_agents.sensor_rig import GNSS_ID, IMU_ID, SPEED_ID
from drive_vla.geometry import carla_steer_from_canonical, carla_to_ego_frame, global_poses_to_local
from drive_vla.types import (
    CAMERA_NAMES,
    HISTORY_STEPS,
    MAX_SPEED_LIMIT_MPS,
    STEP_DT_S,
    Command,
    Control,
    EgoState,
    Observation,
)

# IMU spikes (collisions) must not break EgoState's validation: clip to physical ranges.
MAX_ABS_ACCEL_MPS2 = 50.0
MAX_ABS_YAW_RATE_RPS = 10.0


log = logging.getLogger(__name__)


def bgra_to_rgb(image: np.ndarray, name: str = "image") -> np.ndarray:
    """CARLA camera frame (H, W, 4) uint8 BGRA -> (H, W, 3) uint8 RGB (contiguous copy)."""
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 4 or image.dtype != np.uint8:
        shown = f"array{image.shape} {image.dtype}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"{name}: got {shown}, expected a (H, W, 4) uint8 BGRA array")
    return np.ascontiguousarray(image[:, :, 2::-1])


def carla_pose_to_local(x: float, y: float, yaw_deg: float) -> np.ndarray:
    """CARLA world pose (x, y, yaw degrees clockwise) -> local right-handed [x, y, yaw rad CCW]."""
    lx, ly, _, lyaw = carla_to_ego_frame(x, y, 0.0, yaw_deg)
    return np.array([lx, ly, lyaw])


def transform_to_local_pose(transform: Any) -> np.ndarray:
    """carla.Transform (or anything with .location.x/.y and .rotation.yaw) -> local [x, y, yaw]."""
    return carla_pose_to_local(transform.location.x, transform.location.y, transform.rotation.yaw)


def carla_vector_to_ego(vx: float, vy: float, local_yaw_rad: float) -> np.ndarray:
    """A CARLA world-frame planar vector (velocity, acceleration) -> ego frame (forward, left)."""
    lx, ly, _, _ = carla_to_ego_frame(vx, vy, 0.0, 0.0)
    c, s = math.cos(local_yaw_rad), math.sin(local_yaw_rad)
    return np.array([c * lx + s * ly, -s * lx + c * ly])


def imu_to_ego(imu: Sequence[float]) -> tuple[np.ndarray, float]:
    """IMU [ax, ay, az, gx, gy, gz, compass] (CARLA sensor frame: x forward, y right, z up, left-handed)
    -> ((2,) acceleration (forward, left) m/s^2, yaw rate rad/s counter-clockwise), clipped to sane ranges.

    CARLA's frame is left-handed, so its y and its rotation about z (clockwise seen from above) flip.
    """
    a = np.asarray(imu, dtype=np.float64)
    accel = np.clip(np.array([a[0], -a[1]]), -MAX_ABS_ACCEL_MPS2, MAX_ABS_ACCEL_MPS2)
    yaw_rate = float(np.clip(-a[5], -MAX_ABS_YAW_RATE_RPS, MAX_ABS_YAW_RATE_RPS))
    return accel.astype(np.float32), yaw_rate


@dataclass(frozen=True)
class SensorReadings:
    """One frame of the agent's sensors, checked and converted.

    Attributes:
        images: camera name -> (H, W, 3) uint8 RGB.
        gnss: (3,) [lat deg, lon deg, alt m].
        imu: (7,) raw IMU [ax, ay, az, gx, gy, gz, compass]; the compass may be NaN (early frames).
        speed_mps: forward speed from the speedometer.
        frame: the simulator frame number of the readings (from the cameras).
    """

    images: Mapping[str, np.ndarray]
    gnss: np.ndarray
    imu: np.ndarray
    speed_mps: float
    frame: int

    @property
    def compass_rad(self) -> float:
        return float(self.imu[6])


def _entry(input_data: Mapping[str, Any], key: str) -> tuple[int, Any]:
    if key not in input_data:
        raise ValueError(f"input_data: missing sensor {key!r}, got {sorted(input_data)}")
    item = input_data[key]
    if not isinstance(item, (tuple, list)) or len(item) != 2:
        raise ValueError(f"input_data[{key!r}]: got {type(item).__name__}, expected a (frame, data) pair")
    return int(item[0]), item[1]


def parse_input_data(
    input_data: Mapping[str, Any],
    camera_ids: Mapping[str, str] | None = None,
    gnss_id: str = GNSS_ID,
    imu_id: str = IMU_ID,
    speed_id: str = SPEED_ID,
) -> SensorReadings:
    """The leaderboard's ``input_data`` ({id: (frame, data)}) -> SensorReadings, or ValueError on bad data.

    Everything must be finite except the IMU compass, which CARLA reports as NaN on early frames.
    """
    camera_ids = camera_ids or {c: c for c in CAMERA_NAMES}
    images, frame, shape = {}, -1, None
    for cam in CAMERA_NAMES:
        f, data = _entry(input_data, camera_ids[cam])
        rgb = bgra_to_rgb(data, f"input_data[{camera_ids[cam]!r}]")
        if shape is not None and rgb.shape != shape:
            raise ValueError(
                f"input_data[{camera_ids[cam]!r}]: got shape {rgb.shape}, expected {shape} like the others"
            )
        images[cam], frame, shape = rgb, max(frame, f), rgb.shape
    gnss = np.asarray(_entry(input_data, gnss_id)[1], dtype=np.float64).reshape(-1)
    if gnss.shape[0] < 2 or not np.all(np.isfinite(gnss[:2])):
        raise ValueError(f"input_data[{gnss_id!r}]: got {gnss!r}, expected finite [lat, lon, alt]")
    imu = np.asarray(_entry(input_data, imu_id)[1], dtype=np.float64).reshape(-1)
    if imu.shape != (7,) or not np.all(np.isfinite(imu[:6])):
        raise ValueError(f"input_data[{imu_id!r}]: got {imu!r}, expected 7 values with finite [accel, gyro]")
    speed_data = _entry(input_data, speed_id)[1]
    speed = speed_data.get("speed") if isinstance(speed_data, Mapping) else speed_data
    try:
        speed = float(speed)
    except (TypeError, ValueError):
        raise ValueError(f"input_data[{speed_id!r}]: got {speed_data!r}, expected {{'speed': m/s}}") from None
    if not math.isfinite(speed) or abs(speed) > 100.0:
        raise ValueError(f"input_data[{speed_id!r}] speed: got {speed!r}, expected a finite speed in m/s")
    return SensorReadings(images=images, gnss=gnss, imu=imu, speed_mps=speed, frame=frame)


def ego_state_from_sensors(speed_mps: float, imu: Sequence[float], steer: float = 0.0) -> EgoState:
    """EgoState from the speedometer, the IMU (converted to the ego frame) and the last applied steer."""
    accel, yaw_rate = imu_to_ego(imu)
    return EgoState(
        speed_mps=float(speed_mps),
        accel_mps2=accel,
        yaw_rate_rps=yaw_rate,
        steer=float(np.clip(steer, -1.0, 1.0)),
        source="sensors",
    )


class PoseHistory:
    """Past local-frame poses, sampled into the Observation's history (HISTORY_STEPS at 2 Hz).

    For each history time t - k * 0.5 s it takes the latest recorded pose at or before that time;
    before the episode's first pose it repeats the first one (a car that was standing still).
    """

    def __init__(self, keep_s: float = HISTORY_STEPS * STEP_DT_S + 1.0) -> None:
        self.keep_s = keep_s
        self._items: deque[tuple[float, np.ndarray]] = deque()

    def reset(self) -> None:
        self._items.clear()

    def add(self, t_s: float, pose_xyyaw: Sequence[float]) -> None:
        self._items.append((float(t_s), np.asarray(pose_xyyaw, dtype=np.float64).copy()))
        while len(self._items) > 1 and self._items[1][0] <= t_s - self.keep_s:
            self._items.popleft()

    def in_ego_frame(self, t_s: float, pose_xyyaw: Sequence[float]) -> np.ndarray:
        """(HISTORY_STEPS, 3) past poses [x, y, yaw] in the ego frame of ``pose_xyyaw``, oldest first."""
        if not self._items:
            return np.zeros((HISTORY_STEPS, 3), dtype=np.float32)
        times = np.array([t for t, _ in self._items])
        poses = np.stack([p for _, p in self._items])
        out = []
        for k in range(HISTORY_STEPS, 0, -1):
            idx = int(np.searchsorted(times, t_s - k * STEP_DT_S + 1e-6, side="right")) - 1
            out.append(poses[max(idx, 0)])
        return global_poses_to_local(np.stack(out), pose_xyyaw).astype(np.float32)


def to_vehicle_control(control: Control) -> Any:
    """drive-vla Control (steer positive LEFT) -> carla.VehicleControl (steer positive RIGHT)."""
    import carla

    return carla.VehicleControl(
        throttle=float(control.throttle),
        steer=float(carla_steer_from_canonical(control.steer)),
        brake=float(control.brake),
        hand_brake=False,
        reverse=False,
    )


def build_observation(
    images: Mapping[str, np.ndarray],
    intrinsics: Mapping[str, np.ndarray],
    extrinsics: Mapping[str, np.ndarray],
    ego: EgoState,
    history: np.ndarray,
    command: Command,
    instruction: str,
    timestamp_s: float,
    route_target: np.ndarray | None = None,
    speed_limit_mps: float | None = None,
    junction_m: float | None = None,
) -> Observation:
    """An Observation with the camera calibration of the rig (validated by Observation itself).

    ``route_target``: (ROUTE_TARGET_POINTS, 2) the route planner's next points in the ego frame, or None.
    ``speed_limit_mps``: the road's speed limit in m/s (CARLA's ``Vehicle.get_speed_limit()`` is km/h), or None.
    ``junction_m``: the distance along the global plan to its next junction waypoint, or None.
    """
    return Observation(
        images=dict(images),
        intrinsics=dict(intrinsics),
        extrinsics=dict(extrinsics),
        ego=ego,
        history=np.asarray(history, dtype=np.float32),
        command=command,
        instruction=instruction,
        timestamp_s=float(timestamp_s),
        route_target=None if route_target is None else np.asarray(route_target, dtype=np.float32),
        speed_limit_mps=speed_limit_mps,
        junction_m=junction_m,
    )


def speed_limit_from_kmh(kmh: Any) -> float | None:
    """CARLA's speed limit (km/h, from ``Vehicle.get_speed_limit()``) in m/s; None when it is missing, not
    finite or not positive (the policy then reads its learned "no limit" input; a value that is there but
    unusable is logged)."""
    if kmh is None:
        return None
    try:
        mps = float(kmh) / 3.6
    except (TypeError, ValueError):
        mps = math.nan
    if math.isfinite(mps) and 0.0 < mps <= MAX_SPEED_LIMIT_MPS:
        return mps
    log.warning(
        "speed_limit: got %r km/h from CARLA, expected (0, %.0f] km/h; driving without a limit",
        kmh,
        3.6 * MAX_SPEED_LIMIT_MPS,
    )
    return None


def observation_from_input_data(
    input_data: Mapping[str, Any],
    intrinsics: Mapping[str, np.ndarray],
    extrinsics: Mapping[str, np.ndarray],
    command: Command = Command.STRAIGHT,
    instruction: str = "keep following the road",
    timestamp_s: float = 0.0,
    history: np.ndarray | None = None,
    steer: float = 0.0,
) -> Observation:
    """One call from the leaderboard's ``input_data`` to an Observation (cameras, speedometer, IMU).

    The agent itself keeps the state this needs across frames (route -> command, pose history, last
    steer); this is the stateless path for recorded frames.
    """
    readings = parse_input_data(input_data)
    ego = ego_state_from_sensors(readings.speed_mps, readings.imu, steer)
    past = np.zeros((HISTORY_STEPS, 3), dtype=np.float32) if history is None else history
    return build_observation(readings.images, intrinsics, extrinsics, ego, past, command, instruction, timestamp_s)
