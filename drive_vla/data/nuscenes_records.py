"""Input records of the nuScenes-format writer: scenes, keyframes, annotations, and their validation."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from os import PathLike
from typing import Any

import numpy as np

from drive_vla.data.can_bus import CanRecord
from drive_vla.geometry import NUSCENES_LIDAR2EGO
from drive_vla.types import CAMERA_NAMES

# The 13 tables of a nuScenes version folder, and the file drive-vla writes its language labels to.
TABLES = (
    "category",
    "attribute",
    "visibility",
    "instance",
    "sensor",
    "calibrated_sensor",
    "ego_pose",
    "log",
    "scene",
    "sample",
    "sample_data",
    "sample_annotation",
    "map",
)
LABELS_FILE = "drive_vla_labels.json"

# The nuScenes v1.0 taxonomy (category.json) and attribute/visibility tables.
CATEGORIES: tuple[str, ...] = (
    "animal",
    "human.pedestrian.adult",
    "human.pedestrian.child",
    "human.pedestrian.construction_worker",
    "human.pedestrian.personal_mobility",
    "human.pedestrian.police_officer",
    "human.pedestrian.stroller",
    "human.pedestrian.wheelchair",
    "movable_object.barrier",
    "movable_object.debris",
    "movable_object.pushable_pullable",
    "movable_object.trafficcone",
    "static_object.bicycle_rack",
    "vehicle.bicycle",
    "vehicle.bus.bendy",
    "vehicle.bus.rigid",
    "vehicle.car",
    "vehicle.construction",
    "vehicle.emergency.ambulance",
    "vehicle.emergency.police",
    "vehicle.motorcycle",
    "vehicle.trailer",
    "vehicle.truck",
)
ATTRIBUTES: tuple[str, ...] = (
    "cycle.with_rider",
    "cycle.without_rider",
    "pedestrian.moving",
    "pedestrian.sitting_lying_down",
    "pedestrian.standing",
    "vehicle.moving",
    "vehicle.parked",
    "vehicle.stopped",
)
VISIBILITY_LEVELS: tuple[str, ...] = ("v0-40", "v40-60", "v60-80", "v80-100")  # tokens "1".."4"
MOVING_SPEED_MPS = 0.5  # above this an agent counts as moving for its default attribute

# An image is an (H, W, 3) uint8 RGB array (encoded as JPEG by the writer), or an already-encoded JPEG given
# as bytes or a path (copied byte for byte, e.g. when converting a real dataset).
ImageInput = np.ndarray | bytes | str | PathLike


def _vec(name: str, value: Any, n: int) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.shape != (n,) or not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: got {value!r}, expected {n} finite numbers")
    return arr


def _quat(name: str, value: Any) -> np.ndarray:
    q = _vec(name, value, 4)
    norm = float(np.linalg.norm(q))
    if abs(norm - 1.0) > 1e-3:
        raise ValueError(f"{name}: got {value!r} (norm {norm:.4f}), expected a unit quaternion (w, x, y, z)")
    return q / norm


def default_attribute(category: str, velocity_xy: Sequence[float] | None) -> str | None:
    """nuScenes attribute from the category and the velocity (None when the velocity is unknown)."""
    if velocity_xy is None:
        return None
    moving = math.hypot(float(velocity_xy[0]), float(velocity_xy[1])) > MOVING_SPEED_MPS
    if category in ("vehicle.bicycle", "vehicle.motorcycle"):
        return "cycle.with_rider" if moving else "cycle.without_rider"
    if category.startswith("vehicle."):
        return "vehicle.moving" if moving else "vehicle.stopped"
    if category.startswith("human.pedestrian."):
        return "pedestrian.moving" if moving else "pedestrian.standing"
    return None


@dataclass(frozen=True)
class AnnotationRecord:
    """One agent box at one keyframe, global frame (nuScenes sample_annotation).

    Attributes:
        instance_id: identifies the agent within its scene (stable over time).
        category: nuScenes category name (one of CATEGORIES), e.g. "vehicle.car".
        translation: (3,) box centre in the global frame, metres.
        size_wlh: (3,) width, length, height, metres.
        rotation: (4,) (w, x, y, z) box orientation in the global frame (length along the box x axis).
        velocity: (2,) global velocity (m/s) or None; only used to pick the default attribute (the devkit
            derives velocities from the annotation track).
        num_lidar_pts: LiDAR points in the box. Worlds without a LiDAR keep the default 1 so the devkit's
            evaluation filters (which drop boxes with no points) keep the box.
        visibility: nuScenes visibility level 1..4 (4 = 80-100 % visible).
        attribute: nuScenes attribute name, or None to derive it from the category and velocity.
    """

    instance_id: str | int
    category: str
    translation: Sequence[float]
    size_wlh: Sequence[float]
    rotation: Sequence[float]
    velocity: Sequence[float] | None = None
    num_lidar_pts: int = 1
    visibility: int = 4
    attribute: str | None = None

    def validate(self, where: str) -> None:
        if self.category not in CATEGORIES:
            raise ValueError(
                f"{where}.category: got {self.category!r}, expected a nuScenes category {list(CATEGORIES)}"
            )
        _vec(f"{where}.translation", self.translation, 3)
        size = _vec(f"{where}.size_wlh", self.size_wlh, 3)
        if np.any(size <= 0):
            raise ValueError(f"{where}.size_wlh: got {self.size_wlh!r}, expected positive sizes (m)")
        _quat(f"{where}.rotation", self.rotation)
        if self.velocity is not None:
            _vec(f"{where}.velocity", self.velocity, 2)
        if not isinstance(self.num_lidar_pts, (int, np.integer)) or self.num_lidar_pts < 0:
            raise ValueError(f"{where}.num_lidar_pts: got {self.num_lidar_pts!r}, expected an integer >= 0")
        if self.visibility not in (1, 2, 3, 4):
            raise ValueError(f"{where}.visibility: got {self.visibility!r}, expected a level 1..4")
        if self.attribute is not None and self.attribute not in ATTRIBUTES:
            raise ValueError(f"{where}.attribute: got {self.attribute!r}, expected one of {list(ATTRIBUTES)} or None")

    def attribute_name(self) -> str | None:
        return self.attribute if self.attribute is not None else default_attribute(self.category, self.velocity)


@dataclass(frozen=True)
class SensorPose:
    """Timestamp and ego pose of one sensor's capture when it differs from the keyframe's (real logs)."""

    timestamp_us: int
    ego_translation: Sequence[float]
    ego_rotation: Sequence[float]


@dataclass(frozen=True)
class KeyframeRecord:
    """One 2 Hz keyframe of a scene.

    Attributes:
        timestamp_us: keyframe time (the LIDAR_TOP capture), microseconds.
        ego_translation: (3,) ego position in the global frame, metres.
        ego_rotation: (4,) (w, x, y, z) ego-to-global rotation.
        images: camera name -> image (all six CAMERA_NAMES; same size): an (H, W, 3) uint8 RGB array, or
            an already-encoded JPEG as bytes or a path.
        annotations: boxes of the other agents at this keyframe.
        can: CAN-bus state at this keyframe, or None.
        sensor_poses: optional channel -> SensorPose for sensors captured at another time than the
            keyframe (real logs); channels not listed use the keyframe's timestamp and pose.
    """

    timestamp_us: int
    ego_translation: Sequence[float]
    ego_rotation: Sequence[float]
    images: Mapping[str, ImageInput]
    annotations: Sequence[AnnotationRecord] = ()
    can: CanRecord | None = None
    sensor_poses: Mapping[str, SensorPose] = field(default_factory=dict)

    def validate(self, where: str) -> None:
        if not isinstance(self.timestamp_us, (int, np.integer)) or self.timestamp_us < 0:
            raise ValueError(f"{where}.timestamp_us: got {self.timestamp_us!r}, expected a non-negative integer (us)")
        _vec(f"{where}.ego_translation", self.ego_translation, 3)
        _quat(f"{where}.ego_rotation", self.ego_rotation)
        missing = [c for c in CAMERA_NAMES if c not in self.images]
        unknown = sorted(set(self.images) - set(CAMERA_NAMES))
        if missing or unknown:
            raise ValueError(
                f"{where}.images: missing {missing}, unknown {unknown}; expected exactly {list(CAMERA_NAMES)}"
            )
        for cam in CAMERA_NAMES:
            img = self.images[cam]
            if isinstance(img, np.ndarray) and (img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3):
                raise ValueError(
                    f"{where}.images[{cam}]: got array{img.shape} {img.dtype}, expected (H, W, 3) uint8 RGB"
                )
            if not isinstance(img, (np.ndarray, bytes, str, PathLike)):
                raise ValueError(
                    f"{where}.images[{cam}]: got {type(img).__name__}, expected an array, JPEG bytes or a path"
                )
        seen: set[str] = set()
        for i, ann in enumerate(self.annotations):
            if not isinstance(ann, AnnotationRecord):
                raise ValueError(f"{where}.annotations[{i}]: got {type(ann).__name__}, expected an AnnotationRecord")
            ann.validate(f"{where}.annotations[{i}]")
            if str(ann.instance_id) in seen:
                raise ValueError(f"{where}.annotations[{i}].instance_id: got {ann.instance_id!r} twice in one keyframe")
            seen.add(str(ann.instance_id))
        if self.can is not None and not isinstance(self.can, CanRecord):
            raise ValueError(f"{where}.can: got {type(self.can).__name__}, expected a CanRecord or None")
        for channel, pose in self.sensor_poses.items():
            if channel not in (*CAMERA_NAMES, "LIDAR_TOP") or not isinstance(pose, SensorPose):
                raise ValueError(f"{where}.sensor_poses[{channel!r}]: expected a SensorPose for a camera or LIDAR_TOP")
            _vec(f"{where}.sensor_poses[{channel}].ego_translation", pose.ego_translation, 3)
            _quat(f"{where}.sensor_poses[{channel}].ego_rotation", pose.ego_rotation)


@dataclass(frozen=True)
class SceneRecord:
    """One scene: its keyframes (2 Hz) and the sensor calibration.

    Attributes:
        name: scene name; "scene-NNNN" (see can_bus.scene_name) when keyframes carry CAN data.
        description: free text, stored in scene.json and as the DriveLM scene_description.
        keyframes: at least one KeyframeRecord, timestamps increasing at about 2 Hz.
        intrinsics: camera name -> (3, 3) pinhole matrix for the images as given, pixels.
        extrinsics: camera name -> (4, 4) cam2ego (OpenCV camera axes).
        location: map location name (one map record per location).
        lidar2ego: (4, 4) LIDAR_TOP mount.
    """

    name: str
    description: str
    keyframes: Sequence[KeyframeRecord]
    intrinsics: Mapping[str, np.ndarray]
    extrinsics: Mapping[str, np.ndarray]
    location: str = "embedded-town"
    lidar2ego: np.ndarray = field(default_factory=lambda: NUSCENES_LIDAR2EGO.copy())

    def validate(self) -> None:
        where = f"scene[{self.name!r}]"
        if not isinstance(self.name, str) or not self.name or "/" in self.name:
            raise ValueError(f"scene.name: got {self.name!r}, expected a non-empty name without '/'")
        if not self.keyframes:
            raise ValueError(f"{where}.keyframes: got none, expected at least one KeyframeRecord")
        for cam in CAMERA_NAMES:
            for table, shape in (("intrinsics", (3, 3)), ("extrinsics", (4, 4))):
                mat = getattr(self, table).get(cam)
                arr = None if mat is None else np.asarray(mat, dtype=np.float64)
                if arr is None or arr.shape != shape or not np.all(np.isfinite(arr)):
                    raise ValueError(f"{where}.{table}[{cam}]: got {mat!r}, expected a finite {shape} matrix")
        lidar = np.asarray(self.lidar2ego, dtype=np.float64)
        if lidar.shape != (4, 4) or not np.all(np.isfinite(lidar)):
            raise ValueError(f"{where}.lidar2ego: got {self.lidar2ego!r}, expected a finite (4, 4) transform")
        previous = None
        for i, kf in enumerate(self.keyframes):
            if not isinstance(kf, KeyframeRecord):
                raise ValueError(f"{where}.keyframes[{i}]: got {type(kf).__name__}, expected a KeyframeRecord")
            kf.validate(f"{where}.keyframes[{i}]")
            if previous is not None:
                gap_s = (kf.timestamp_us - previous) / 1e6
                if not 0.25 <= gap_s <= 1.0:
                    raise ValueError(
                        f"{where}.keyframes[{i}].timestamp_us: {gap_s:.3f} s after the previous keyframe, "
                        "expected increasing keyframes at about 2 Hz (0.25..1.0 s apart)"
                    )
            previous = kf.timestamp_us
