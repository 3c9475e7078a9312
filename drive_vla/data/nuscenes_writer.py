"""Write a nuScenes-format dataset (13 tables, camera JPEGs, LiDAR stubs, CAN bus, splits, DriveLM labels).

The output loads unchanged with ``nuscenes.nuscenes.NuScenes(version, dataroot)`` and the CAN-bus API.
Everything is written into a staging folder inside ``dataroot`` and moved into place by ``finish()``, so
an interrupted run never leaves a half-written dataset, and an existing dataset is never replaced
silently.

Layout: ``samples/CAM_*/<log>__<CAM>__<t>.jpg``, ``samples/LIDAR_TOP/<log>__LIDAR_TOP__<t>.pcd.bin``,
``maps/<token>.png``, ``can_bus/<scene>_pose.json``, ``can_bus/<scene>_vehicle_monitor.json``,
``<version>/<table>.json``, ``<version>/splits.json``, ``<version>/drive_vla_labels.json``.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from drive_vla.data.can_bus import CanRecord, check_can_scene_name, pose_message, vehicle_monitor_message
from drive_vla.data.drivelm import check_label
from drive_vla.data.images import encode_jpeg, jpeg_size
from drive_vla.data.nuscenes_records import (
    ATTRIBUTES,
    CATEGORIES,
    LABELS_FILE,
    TABLES,
    VISIBILITY_LEVELS,
    AnnotationRecord,
    KeyframeRecord,
    SceneRecord,
    SensorPose,
)
from drive_vla.geometry import matrix_to_quat
from drive_vla.types import CAMERA_NAMES

__all__ = ["AnnotationRecord", "CanRecord", "KeyframeRecord", "NuScenesWriter", "SceneRecord", "SensorPose"]

SPLITS_FILE = "splits.json"
LIDAR = "LIDAR_TOP"
OWNED_DIRS = ("samples", "can_bus", "maps")  # beside the version folder


def existing_versions(dataroot: str | os.PathLike) -> list[str]:
    """Version folders (holding a scene.json) directly under ``dataroot``."""
    root = Path(dataroot)
    if not root.is_dir():
        return []
    return sorted(
        p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and (p / "scene.json").is_file()
    )


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as fh:
        json.dump(obj, fh, separators=(",", ":"))
    os.replace(tmp, path)


def _write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class NuScenesWriter:
    """Builds a nuScenes-format dataset scene by scene.

    Args:
        dataroot: output folder (created if needed). It must not hold another dataset.
        version: table folder name, e.g. "v1.0-embedded".
        jpeg_quality: quality of the JPEGs encoded from arrays.
        overwrite: replace an existing dataset of the SAME version in ``dataroot`` at ``finish()``.

    Raises:
        ValueError: ``dataroot`` already holds a dataset of another version, or of this version without
            ``overwrite=True``.
    """

    def __init__(
        self,
        dataroot: str | os.PathLike,
        version: str = "v1.0-embedded",
        *,
        jpeg_quality: int = 90,
        overwrite: bool = False,
    ):
        if not version or "/" in version or version.startswith("."):
            raise ValueError(f"version: got {version!r}, expected a folder name such as 'v1.0-embedded'")
        self.dataroot = Path(dataroot)
        self.version = version
        self.jpeg_quality = int(jpeg_quality)
        self.overwrite = overwrite
        found = existing_versions(self.dataroot)
        others = [v for v in found if v != version]
        if others:
            raise ValueError(
                f"dataroot {self.dataroot}: already holds dataset version(s) {others}; "
                f"write {version!r} to an empty folder (versions never share samples/)"
            )
        if version in found and not overwrite:
            raise ValueError(
                f"dataroot {self.dataroot}: already holds dataset version {version!r}; "
                "pass overwrite=True (CLI: a new --out) to replace it"
            )
        if not found and not overwrite and any((self.dataroot / d).exists() for d in OWNED_DIRS):
            raise ValueError(
                f"dataroot {self.dataroot}: holds {list(OWNED_DIRS)} folders without tables; expected an empty folder"
            )
        self.stage = self.dataroot / f".partial-{version}"
        if self.stage.exists():
            shutil.rmtree(self.stage)  # left over from an interrupted run of this writer
        (self.stage / version).mkdir(parents=True)
        self.tables: dict[str, list[dict[str, Any]]] = {t: [] for t in TABLES}
        self._scene_names: dict[str, str] = {}  # name -> token
        self._sample_scene: dict[str, str] = {}  # sample token -> scene token
        self._labels: dict[str, dict[str, Any]] = {}
        self._descriptions: dict[str, str] = {}  # scene token -> description
        self._logs_by_location: dict[str, list[str]] = defaultdict(list)
        self._finished = False
        self._init_static_tables()

    # ------------------------------------------------------------------ helpers

    def _token(self, *parts: Any) -> str:
        return hashlib.md5("/".join([self.version, *map(str, parts)]).encode()).hexdigest()

    def _init_static_tables(self) -> None:
        self.tables["category"] = [
            {"token": self._token("category", c), "name": c, "description": c} for c in CATEGORIES
        ]
        self.tables["attribute"] = [
            {"token": self._token("attribute", a), "name": a, "description": a} for a in ATTRIBUTES
        ]
        self.tables["visibility"] = [
            {"token": str(i + 1), "level": lvl, "description": f"visibility of whole object is {lvl[1:]} %"}
            for i, lvl in enumerate(VISIBILITY_LEVELS)
        ]
        self.tables["sensor"] = [
            {"token": self._token("sensor", ch), "channel": ch, "modality": "camera"} for ch in CAMERA_NAMES
        ] + [{"token": self._token("sensor", LIDAR), "channel": LIDAR, "modality": "lidar"}]

    def __enter__(self) -> NuScenesWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()

    def abort(self) -> None:
        """Delete everything written so far (the staging folder); the dataroot is left as it was."""
        shutil.rmtree(self.stage, ignore_errors=True)
        self._finished = True

    # ------------------------------------------------------------------ scenes

    def add_scene(self, scene: SceneRecord) -> list[str]:
        """Write one scene's files and records; return its sample tokens in time order."""
        if self._finished:
            raise ValueError("writer: add_scene after finish()/abort(), expected a new NuScenesWriter")
        if not isinstance(scene, SceneRecord):
            raise ValueError(f"scene: got {type(scene).__name__}, expected a SceneRecord")
        scene.validate()
        if scene.name in self._scene_names:
            raise ValueError(f"scene.name: got {scene.name!r} twice, expected unique scene names")
        has_can = any(kf.can is not None for kf in scene.keyframes)
        if has_can:
            check_can_scene_name(scene.name)
        t: dict[str, list[dict[str, Any]]] = defaultdict(list)  # this scene's rows, merged once all succeeded
        scene_token = self._token("scene", scene.name)
        log_token = self._token("log", scene.name)
        logfile = f"{scene.location}-{scene.name}"
        date = _dt.datetime.fromtimestamp(scene.keyframes[0].timestamp_us / 1e6, _dt.timezone.utc).strftime("%Y-%m-%d")
        t["log"].append(
            {
                "token": log_token,
                "logfile": logfile,
                "vehicle": "drive-vla",
                "date_captured": date,
                "location": scene.location,
            }
        )
        calib = self._add_calibration(scene, t)

        n = len(scene.keyframes)
        sample_tokens = [self._token("sample", scene.name, i) for i in range(n)]
        prev_sd: dict[str, dict[str, Any]] = {}
        image_wh: tuple[int, int] | None = None
        for i, kf in enumerate(scene.keyframes):
            t["sample"].append(
                {
                    "token": sample_tokens[i],
                    "timestamp": int(kf.timestamp_us),
                    "prev": sample_tokens[i - 1] if i > 0 else "",
                    "next": sample_tokens[i + 1] if i + 1 < n else "",
                    "scene_token": scene_token,
                }
            )
            for ch in (*CAMERA_NAMES, LIDAR):
                pose = kf.sensor_poses.get(ch) or SensorPose(kf.timestamp_us, kf.ego_translation, kf.ego_rotation)
                ts = int(pose.timestamp_us)
                ego_token = self._token("ego_pose", scene.name, i, ch)
                t["ego_pose"].append(
                    {
                        "token": ego_token,
                        "timestamp": ts,
                        "rotation": [
                            float(v) for v in np.asarray(pose.ego_rotation) / np.linalg.norm(pose.ego_rotation)
                        ],
                        "translation": [float(v) for v in pose.ego_translation],
                    }
                )
                if ch == LIDAR:
                    rel = f"samples/{LIDAR}/{logfile}__{LIDAR}__{ts}.pcd.bin"
                    self._write(rel, self._lidar_stub(scene.lidar2ego))
                    fmt, w, h = "pcd", 0, 0
                else:
                    data = self._jpeg(kf.images[ch], f"{scene.name}.keyframes[{i}].images[{ch}]")
                    w, h = jpeg_size(data, f"{scene.name}.keyframes[{i}].images[{ch}]")
                    if image_wh is None:
                        image_wh = (w, h)
                    elif (w, h) != image_wh:
                        raise ValueError(
                            f"scene[{scene.name!r}].keyframes[{i}].images[{ch}]: {w}x{h} pixels, expected {image_wh[0]}x{image_wh[1]} like the others"
                        )
                    rel = f"samples/{ch}/{logfile}__{ch}__{ts}.jpg"
                    self._write(rel, data)
                    fmt = "jpg"
                sd_token = self._token("sample_data", scene.name, i, ch)
                record = {
                    "token": sd_token,
                    "sample_token": sample_tokens[i],
                    "ego_pose_token": ego_token,
                    "calibrated_sensor_token": calib[ch],
                    "timestamp": ts,
                    "fileformat": fmt,
                    "is_key_frame": True,
                    "height": h,
                    "width": w,
                    "filename": rel,
                    "prev": prev_sd[ch]["token"] if ch in prev_sd else "",
                    "next": "",
                }
                if ch in prev_sd:
                    prev_sd[ch]["next"] = sd_token
                t["sample_data"].append(record)
                prev_sd[ch] = record
        self._add_annotations(scene, sample_tokens, t)
        if has_can:
            self._write_can(scene)
        t["scene"].append(
            {
                "token": scene_token,
                "log_token": log_token,
                "nbr_samples": n,
                "first_sample_token": sample_tokens[0],
                "last_sample_token": sample_tokens[-1],
                "name": scene.name,
                "description": scene.description,
            }
        )
        for name, rows in t.items():
            self.tables[name].extend(rows)
        self._logs_by_location[scene.location].append(log_token)
        self._sample_scene.update((token, scene_token) for token in sample_tokens)
        self._scene_names[scene.name] = scene_token
        self._descriptions[scene_token] = scene.description
        return sample_tokens

    def _add_calibration(self, scene: SceneRecord, t: dict[str, list[dict[str, Any]]]) -> dict[str, str]:
        out = {}
        for ch in (*CAMERA_NAMES, LIDAR):
            mat = np.asarray(scene.lidar2ego if ch == LIDAR else scene.extrinsics[ch], dtype=np.float64)
            token = self._token("calibrated_sensor", scene.name, ch)
            t["calibrated_sensor"].append(
                {
                    "token": token,
                    "sensor_token": self._token("sensor", ch),
                    "translation": [float(v) for v in mat[:3, 3]],
                    "rotation": [float(v) for v in matrix_to_quat(mat[:3, :3])],
                    "camera_intrinsic": []
                    if ch == LIDAR
                    else np.asarray(scene.intrinsics[ch], dtype=np.float64).tolist(),
                }
            )
            out[ch] = token
        return out

    def _add_annotations(
        self, scene: SceneRecord, sample_tokens: list[str], t: dict[str, list[dict[str, Any]]]
    ) -> None:
        tracks: dict[str, list[tuple[int, AnnotationRecord]]] = defaultdict(list)
        for i, kf in enumerate(scene.keyframes):
            for ann in kf.annotations:
                tracks[str(ann.instance_id)].append((i, ann))
        for inst_id, track in tracks.items():
            categories = {a.category for _, a in track}
            if len(categories) > 1:
                raise ValueError(
                    f"scene[{scene.name!r}] instance {inst_id!r}: categories {sorted(categories)}, expected one"
                )
            inst_token = self._token("instance", scene.name, inst_id)
            ann_tokens = [self._token("sample_annotation", scene.name, inst_id, i) for i, _ in track]
            for j, (i, ann) in enumerate(track):
                attr = ann.attribute_name()
                t["sample_annotation"].append(
                    {
                        "token": ann_tokens[j],
                        "sample_token": sample_tokens[i],
                        "instance_token": inst_token,
                        "visibility_token": str(ann.visibility),
                        "attribute_tokens": [] if attr is None else [self._token("attribute", attr)],
                        "translation": [float(v) for v in ann.translation],
                        "size": [float(v) for v in ann.size_wlh],
                        "rotation": [float(v) for v in np.asarray(ann.rotation) / np.linalg.norm(ann.rotation)],
                        "prev": ann_tokens[j - 1] if j > 0 else "",
                        "next": ann_tokens[j + 1] if j + 1 < len(track) else "",
                        "num_lidar_pts": int(ann.num_lidar_pts),
                        "num_radar_pts": 0,
                    }
                )
            t["instance"].append(
                {
                    "token": inst_token,
                    "category_token": self._token("category", track[0][1].category),
                    "nbr_annotations": len(track),
                    "first_annotation_token": ann_tokens[0],
                    "last_annotation_token": ann_tokens[-1],
                }
            )

    def _write_can(self, scene: SceneRecord) -> None:
        poses, monitor = [], []
        prev: KeyframeRecord | None = None
        for kf in scene.keyframes:
            if kf.can is None:
                continue
            poses.append(pose_message(kf.timestamp_us, kf.ego_translation, kf.ego_rotation, kf.can))
            dt_s = 0.0 if prev is None else (kf.timestamp_us - prev.timestamp_us) / 1e6
            monitor.append(vehicle_monitor_message(kf.timestamp_us, kf.can, None if prev is None else prev.can, dt_s))
            prev = kf
        (self.stage / "can_bus").mkdir(exist_ok=True)
        _write_json(self.stage / "can_bus" / f"{scene.name}_pose.json", poses)
        _write_json(self.stage / "can_bus" / f"{scene.name}_vehicle_monitor.json", monitor)

    def _jpeg(self, image: Any, where: str) -> bytes:
        if isinstance(image, np.ndarray):
            return encode_jpeg(image, self.jpeg_quality)
        data = bytes(image) if isinstance(image, bytes) else Path(image).read_bytes()
        jpeg_size(data, where)
        return data

    @staticmethod
    def _lidar_stub(lidar2ego: np.ndarray) -> bytes:
        """A tiny valid LIDAR_TOP scan: 32 ground points on a 10 m ring, (x, y, z, intensity, ring) float32."""
        angles = np.linspace(0, 2 * np.pi, 32, endpoint=False)
        ground_z = -float(np.asarray(lidar2ego)[2, 3])
        pts = np.stack([10 * np.cos(angles), 10 * np.sin(angles), np.full(32, ground_z), np.zeros(32), np.zeros(32)], 1)
        return pts.astype(np.float32).tobytes()

    def _write(self, rel: str, data: bytes) -> None:
        path = self.stage / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_bytes(path, data)

    # ------------------------------------------------------------------ labels and finish

    def set_labels(self, sample_token: str, label: dict[str, Any]) -> None:
        """Attach the DriveLM-style label of one sample (the inner per-sample dict, see the module docstring)."""
        if sample_token not in self._sample_scene:
            raise ValueError(f"sample_token: got {sample_token!r}, expected a token returned by add_scene")
        check_label(label, f"labels[{sample_token}]")
        self._labels[sample_token] = json.loads(json.dumps(label))

    def finish(self, splits: dict[str, list[str]]) -> Path:
        """Write the tables, map, splits and labels, then move the dataset into ``dataroot``; return it."""
        if self._finished:
            raise ValueError("writer: finish() called twice or after abort()")
        if not self.tables["scene"]:
            raise ValueError("writer: finish() with no scene, expected at least one add_scene()")
        for name, scenes in splits.items():
            unknown = [s for s in scenes if s not in self._scene_names]
            if unknown:
                raise ValueError(
                    f"splits[{name!r}]: unknown scenes {unknown}, expected names among {sorted(self._scene_names)}"
                )
        for location, logs in self._logs_by_location.items():
            token = self._token("map", location)
            rel = f"maps/{token}.png"
            # Semantic-prior mask (drivable area); the embedded world has no raster map, so all is drivable.
            ok, png = cv2.imencode(".png", np.full((64, 64), 255, dtype=np.uint8))
            self._write(rel, png.tobytes())
            self.tables["map"].append(
                {"token": token, "log_tokens": logs, "category": "semantic_prior", "filename": rel}
            )
        table_dir = self.stage / self.version
        for name in TABLES:
            _write_json(table_dir / f"{name}.json", self.tables[name])
        _write_json(table_dir / SPLITS_FILE, {k: list(v) for k, v in splits.items()})
        labels: dict[str, Any] = {}
        for token, label in self._labels.items():
            scene_token = self._sample_scene[token]
            entry = labels.setdefault(
                scene_token, {"scene_description": self._descriptions[scene_token], "key_frames": {}}
            )
            entry["key_frames"][token] = label
        _write_json(table_dir / LABELS_FILE, labels)
        self._move_into_place()
        self._finished = True
        return self.dataroot

    def _move_into_place(self) -> None:
        names = [self.version, *OWNED_DIRS]
        old = self.dataroot / f".replaced-{self.version}"
        if self.overwrite:
            shutil.rmtree(old, ignore_errors=True)
            old.mkdir()
            for name in names:
                if (self.dataroot / name).exists():
                    os.replace(self.dataroot / name, old / name)
        for name in names:
            if (self.stage / name).exists():
                os.replace(self.stage / name, self.dataroot / name)
        shutil.rmtree(self.stage, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
