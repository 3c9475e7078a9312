"""A columnar index of a nuScenes-format dataset, built once with nuscenes-devkit and cached as npz + JSON.

The index holds everything a Sample needs except the pixels: keyframe poses, camera calibration, ego
state (CAN bus or poses), annotations, labels and joined QA. Readers assemble samples from it with
numpy alone, so a cached index skips loading the devkit tables altogether.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from drive_vla.data.can_bus import control_from_vehicle_monitor, nearest_message
from drive_vla.data.drivelm import behavior_labels, load_key_frames
from drive_vla.data.nuscenes_records import LABELS_FILE, TABLES
from drive_vla.data.qa_formats import QAFile, QAFileError, load_qa_file
from drive_vla.data.splits import scenes_for_split
from drive_vla.geometry import NUSCENES_LIDAR2EGO, compose, invert_transform, make_transform, quat_to_matrix
from drive_vla.types import CAMERA_NAMES

log = logging.getLogger(__name__)

INDEX_FORMAT = 2  # 2: QA files read strictly; DriveLM behavior answers as explanation/meta-action labels
CAN_POSE_MAX_GAP_US = 100_000  # pose messages are 50 Hz on the real car
CAN_MONITOR_MAX_GAP_US = 600_000  # vehicle_monitor is 2 Hz


class DatasetError(ValueError):
    """A dataset folder, table or file is missing or malformed (the message names the path)."""


@dataclass
class DatasetIndex:
    """Per-sample arrays (S samples, M annotations) in split order; scenes are contiguous."""

    version: str
    tokens: list[str]
    scene_names: list[str]
    scene_tokens: list[str]
    scene_start: np.ndarray  # (n_scenes + 1,) int64 sample offsets
    timestamp_us: np.ndarray  # (S,) int64
    ref_pose: np.ndarray  # (S, 4, 4) ego2global at the LIDAR_TOP capture (the sample's ego frame)
    lidar2ego: np.ndarray  # (S, 4, 4)
    cam_files: list[list[str]]  # (S, 6) paths relative to dataroot, CAMERA_NAMES order
    cam_wh: np.ndarray  # (S, 6, 2) int64 image width, height
    intrinsics: np.ndarray  # (S, 6, 3, 3)
    cam2ego: np.ndarray  # (S, 6, 4, 4) camera pose in the sample's ego frame (ego motion compensated)
    ego: np.ndarray  # (S, 5) [speed_mps, ax, ay, yaw_rate_rps, steer]
    ego_from_can: np.ndarray  # (S,) bool
    control: np.ndarray  # (S, 3) [steer, throttle, brake] from vehicle_monitor
    control_valid: np.ndarray  # (S,) bool
    ann_start: np.ndarray  # (S + 1,) int64 annotation offsets
    ann_xyz: np.ndarray  # (M, 3) global box centres
    ann_wlh: np.ndarray  # (M, 3)
    ann_heading: np.ndarray  # (M, 3) global direction of each box's length axis
    ann_category: np.ndarray  # (M,) int64 into categories
    ann_instance: np.ndarray  # (M,) int64 into instances
    categories: list[str]
    instances: list[str]
    labels: dict[str, dict[str, Any]] = field(default_factory=dict)
    qa: dict[str, list[list[str]]] = field(default_factory=dict)
    has_can: bool = False
    has_labels: bool = False

    @property
    def sample_scene(self) -> np.ndarray:
        """(S,) scene number of each sample."""
        counts = np.diff(self.scene_start)
        return np.repeat(np.arange(len(counts)), counts)

    def save(self, stem: Path) -> None:
        """Write ``<stem>.npz`` (arrays) and ``<stem>.json`` (strings), each atomically."""
        arrays, rest = {}, {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            (arrays if isinstance(value, np.ndarray) else rest)[f.name] = value
        stem.parent.mkdir(parents=True, exist_ok=True)
        for suffix, write in (
            (".npz", lambda fh: np.savez(fh, **arrays)),
            (".json", lambda fh: fh.write(json.dumps(rest).encode())),
        ):
            tmp = stem.with_name(f".{stem.name}{suffix}.{os.getpid()}.tmp")
            with open(tmp, "wb") as fh:
                write(fh)
            os.replace(tmp, stem.with_suffix(suffix))

    @classmethod
    def load(cls, stem: Path) -> DatasetIndex | None:
        try:
            rest = json.loads(stem.with_suffix(".json").read_text())
            with np.load(stem.with_suffix(".npz"), allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
            return cls(**rest, **arrays)
        except (OSError, ValueError, TypeError, KeyError):
            return None


def check_dataset_files(dataroot: str | os.PathLike, version: str) -> Path:
    """Raise DatasetError naming the path if the dataroot, version folder or a table file is missing."""
    root = Path(dataroot)
    if not root.is_dir():
        raise DatasetError(f"dataroot: {root} does not exist or is not a folder")
    table_root = root / version
    if not table_root.is_dir():
        found = sorted(p.name for p in root.iterdir() if (p / "scene.json").is_file())
        raise DatasetError(f"version: {table_root} does not exist; versions found in {root}: {found}")
    for table in TABLES:
        if not (table_root / f"{table}.json").is_file():
            raise DatasetError(
                f"table file missing: {table_root / f'{table}.json'}; expected the {len(TABLES)} nuScenes tables "
                f"{list(TABLES)} in {table_root}"
            )
    return table_root


def index_fingerprint(dataroot: Path, version: str, split: str | None, can_root: Path, qa_file: str | None) -> str:
    """Hash of the index inputs: table, splits, labels, CAN-bus and QA files (path, size, mtime) and options."""
    h = hashlib.sha1(f"{INDEX_FORMAT}|{dataroot.resolve()}|{version}|{split}|{can_root.resolve()}|{qa_file}".encode())
    paths = [dataroot / version / f"{t}.json" for t in TABLES]
    paths += [dataroot / version / "splits.json", dataroot / version / LABELS_FILE]
    if qa_file:
        paths.append(Path(qa_file))
    can_dir = can_root / "can_bus"
    if can_dir.is_dir():
        paths += sorted(can_dir.iterdir())
    for p in paths:
        try:
            st = p.stat()
            h.update(f"|{p}|{st.st_size}|{st.st_mtime_ns}".encode())
        except FileNotFoundError:
            h.update(f"|{p}|-".encode())
    return h.hexdigest()


def _load_devkit(dataroot: Path, version: str):
    from nuscenes.nuscenes import NuScenes

    table_root = check_dataset_files(dataroot, version)
    try:
        return NuScenes(version=version, dataroot=str(dataroot), verbose=False)
    except json.JSONDecodeError as exc:
        for table in TABLES:
            try:
                json.loads((table_root / f"{table}.json").read_text())
            except json.JSONDecodeError as table_exc:
                raise DatasetError(
                    f"table file: {table_root / f'{table}.json'}: not valid JSON ({table_exc}), expected a complete "
                    "nuScenes table (a JSON list of records)"
                ) from None
        raise DatasetError(f"dataset {table_root}: not valid JSON ({exc})") from None
    except (AssertionError, KeyError, IndexError, TypeError) as exc:
        raise DatasetError(
            f"dataset {table_root}: nuscenes-devkit could not load it ({type(exc).__name__}: {exc})"
        ) from None


def check_qa_frames(qa: QAFile, sample_scene: dict[str, str], where: str) -> list[str]:
    """Check the frames of a QA file against a dataset's samples (sample token -> scene token).

    Returns the frame tokens whose scene is not in the dataset (e.g. DriveLM's trainval frames on
    v1.0-mini): those are reported, not errors.

    Raises:
        DatasetError: naming the record when a frame's scene is in the dataset but the frame token is not
            one of its samples (a mistyped token), when the dataset puts the frame in another scene than
            the file does, or when no frame of the file is in the dataset.
    """
    scenes = set(sample_scene.values())
    missing = []
    for token, frame in qa.frames.items():
        scene = sample_scene.get(token)
        rec = f"qa_file {qa.path}: scene {frame.scene_token or '?'}, frame {token}"
        if scene is None:
            if frame.scene_token and frame.scene_token in scenes:
                raise DatasetError(f"{rec}: frame token is not a sample of that scene in {where}")
            missing.append(token)
        elif frame.scene_token and frame.scene_token != scene:
            raise DatasetError(f"{rec}: {where} puts this sample in scene {scene}, expected the file's scene")
    if qa.frames and len(missing) == len(qa.frames):
        first = next(iter(qa.frames.values()))
        raise DatasetError(
            f"qa_file {qa.path}: scene {first.scene_token or '?'}, frame {first.frame_token}: none of the file's "
            f"{len(qa.frames)} frames is a sample of {where}, expected QA of this dataset version"
        )
    return missing


def _load_qa(
    qa_file: str | os.PathLike | None, sample_scene: dict[str, str], where: str
) -> tuple[dict[str, list[list[str]]], dict[str, dict[str, str]]]:
    """(QA pairs by sample token, explanation/meta-action labels from DriveLM behavior answers by token).

    The file is read strictly (``qa_formats.load_qa_file``); it must carry answers.
    """
    if not qa_file:
        return {}, {}
    try:
        qa = load_qa_file(qa_file)
    except QAFileError as exc:
        raise DatasetError(str(exc)) from None
    if not qa.has_answers:
        raise DatasetError(
            f"qa_file {qa_file}: has questions only (no answers), expected a training file with answers "
            "(questions-only files are for `drive-vla eval qa --questions`)"
        )
    missing = check_qa_frames(qa, sample_scene, where)
    if missing:
        log.warning("qa_file %s: %d of %d frames are not samples of %s", qa_file, len(missing), len(qa.frames), where)
    pairs = {t: [[p.question, str(p.answer)] for p in f.pairs] for t, f in qa.frames.items()}
    labels = {}
    if qa.layout == "drivelm":
        for t, f in qa.frames.items():
            got = behavior_labels([(p.kind, p.question, str(p.answer)) for p in f.pairs])
            if got:
                labels[t] = got
    return pairs, labels


def _can_messages(can_root: Path, scene_name: str) -> tuple[list, list]:
    """(pose, vehicle_monitor) messages of a scene via the devkit's CAN-bus API; empty lists when absent."""
    if not (can_root / "can_bus").is_dir():
        return [], []
    from nuscenes.can_bus.can_bus_api import NuScenesCanBus

    can = NuScenesCanBus(dataroot=str(can_root))
    out = []
    for message in ("pose", "vehicle_monitor"):
        try:
            out.append(list(can.get_messages(scene_name, message, print_warnings=False)))
        except Exception:  # the devkit raises bare Exception/AssertionError for scenes without CAN data
            out.append([])
    return out[0], out[1]


def _planar_rel(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """Pose of transform ``b`` in the frame of transform ``a``: (x, y, yaw)."""
    rel = invert_transform(a) @ b
    return float(rel[0, 3]), float(rel[1, 3]), math.atan2(rel[1, 0], rel[0, 0])


def ego_from_poses(poses: np.ndarray, t_us: np.ndarray) -> np.ndarray:
    """(n, 5) [speed, ax, ay, yaw_rate, 0] of one scene from keyframe poses, by backward differences.

    Only past poses are used (no look-ahead), except at the first keyframe where the first forward
    difference stands in; accelerations need two past intervals and are 0 before that.
    """
    n = len(poses)
    out = np.zeros((n, 5))
    if n < 2:
        return out
    vel = np.zeros((n, 2))
    for i in range(n):
        a, b = (i - 1, i) if i > 0 else (0, 1)
        dt = max((t_us[b] - t_us[a]) / 1e6, 1e-3)
        x, y, yaw = _planar_rel(poses[b], poses[a])  # previous pose in the later frame
        vel[i] = (-x / dt, -y / dt)
        out[i, 0] = vel[i, 0]
        out[i, 3] = -yaw / dt
    for i in range(2, n):
        dt = max((t_us[i] - t_us[i - 1]) / 1e6, 1e-3)
        _, _, yaw = _planar_rel(poses[i], poses[i - 1])
        c, s = math.cos(yaw), math.sin(yaw)
        prev = np.array([c * vel[i - 1, 0] - s * vel[i - 1, 1], s * vel[i - 1, 0] + c * vel[i - 1, 1]])
        out[i, 1:3] = (vel[i] - prev) / dt
    return out


def build_index(
    dataroot: str | os.PathLike,
    version: str,
    split: str | None = None,
    can_root: str | os.PathLike | None = None,
    qa_file: str | os.PathLike | None = None,
) -> DatasetIndex:
    """Load the dataset with nuscenes-devkit and extract the index of ``split`` (all scenes if None)."""
    root = Path(dataroot)
    nusc = _load_devkit(root, version)
    can_root = Path(can_root) if can_root is not None else root
    wanted = scenes_for_split(root, version, split, [s["name"] for s in nusc.scene])
    by_name = {s["name"]: s for s in nusc.scene}
    labels_path = root / version / LABELS_FILE
    labels: dict[str, dict[str, Any]] = {}
    if labels_path.is_file():
        try:
            labels = load_key_frames(labels_path, "labels file")
        except ValueError as exc:
            raise DatasetError(str(exc)) from None
    cols: dict[str, list] = {
        k: []
        for k in ("tokens", "ts", "ref", "lidar", "files", "wh", "K", "cam2ego", "ego", "from_can", "ctrl", "ctrl_ok")
    }
    ann = {k: [] for k in ("xyz", "wlh", "heading", "cat", "inst")}
    categories: dict[str, int] = {}
    instances: dict[str, int] = {}
    ann_start, scene_start, has_can = [0], [0], False
    for name in wanted:
        scene = by_name[name]
        samples, token = [], scene["first_sample_token"]
        while token:
            samples.append(nusc.get("sample", token))
            token = samples[-1]["next"]
        refs, ts = [], []
        for sample in samples:
            data = sample["data"]
            missing = [c for c in CAMERA_NAMES if c not in data]
            if missing:
                raise DatasetError(f"sample {sample['token']} of {name}: no sample_data for cameras {missing}")
            ref_sd = nusc.get("sample_data", data.get("LIDAR_TOP", data["CAM_FRONT"]))
            ref_pose = nusc.get("ego_pose", ref_sd["ego_pose_token"])
            ref = make_transform(ref_pose["rotation"], ref_pose["translation"])
            lidar2ego = NUSCENES_LIDAR2EGO
            if "LIDAR_TOP" in data:
                cs = nusc.get("calibrated_sensor", ref_sd["calibrated_sensor_token"])
                lidar2ego = make_transform(cs["rotation"], cs["translation"])
            files, wh, ks, c2e = [], [], [], []
            for cam in CAMERA_NAMES:
                sd = nusc.get("sample_data", data[cam])
                cs = nusc.get("calibrated_sensor", sd["calibrated_sensor_token"])
                pose = nusc.get("ego_pose", sd["ego_pose_token"])
                cam_pose = make_transform(pose["rotation"], pose["translation"])
                files.append(sd["filename"])
                wh.append((sd["width"], sd["height"]))
                ks.append(cs["camera_intrinsic"])
                c2e.append(compose(invert_transform(ref), cam_pose, make_transform(cs["rotation"], cs["translation"])))
            for a_token in sample["anns"]:
                a = nusc.get("sample_annotation", a_token)
                ann["xyz"].append(a["translation"])
                ann["wlh"].append(a["size"])
                ann["heading"].append(quat_to_matrix(a["rotation"])[:, 0])
                ann["cat"].append(categories.setdefault(a["category_name"], len(categories)))
                ann["inst"].append(instances.setdefault(a["instance_token"], len(instances)))
            ann_start.append(len(ann["xyz"]))
            refs.append(ref)
            ts.append(sample["timestamp"])
            cols["tokens"].append(sample["token"])
            for key, value in (
                ("ref", ref),
                ("lidar", lidar2ego),
                ("files", files),
                ("wh", wh),
                ("K", ks),
                ("cam2ego", c2e),
            ):
                cols[key].append(value)
        ts_arr = np.asarray(ts, dtype=np.int64)
        ego = ego_from_poses(np.asarray(refs), ts_arr)
        from_can = np.zeros(len(samples), dtype=bool)
        ctrl, ctrl_ok = np.zeros((len(samples), 3)), np.zeros(len(samples), dtype=bool)
        poses, monitor = _can_messages(can_root, name)
        pose_t = np.array([m["utime"] for m in poses], dtype=np.int64)
        mon_t = np.array([m["utime"] for m in monitor], dtype=np.int64)
        for i, t in enumerate(ts_arr):
            msg = nearest_message(poses, pose_t, int(t), CAN_POSE_MAX_GAP_US)
            mon = nearest_message(monitor, mon_t, int(t), CAN_MONITOR_MAX_GAP_US)
            if mon is not None:
                ctrl[i], ctrl_ok[i] = control_from_vehicle_monitor(mon), True
            if msg is not None:
                ego[i] = [
                    msg["vel"][0],
                    msg["accel"][0],
                    msg["accel"][1],
                    msg["rotation_rate"][2],
                    ctrl[i, 0] if mon is not None else 0.0,
                ]
                from_can[i] = has_can = True
        cols["ego"].append(ego)
        cols["from_can"].append(from_can)
        cols["ctrl"].append(ctrl)
        cols["ctrl_ok"].append(ctrl_ok)
        cols["ts"].append(ts_arr)
        scene_start.append(scene_start[-1] + len(samples))
    n_ann = len(ann["xyz"])
    sample_scene = {s["token"]: s["scene_token"] for s in nusc.sample}
    qa_by_token, qa_labels = _load_qa(qa_file, sample_scene, f"{root} {version}")
    tokens = set(cols["tokens"])
    return DatasetIndex(
        version=version,
        tokens=cols["tokens"],
        scene_names=list(wanted),
        scene_tokens=[by_name[n]["token"] for n in wanted],
        scene_start=np.asarray(scene_start, dtype=np.int64),
        timestamp_us=np.concatenate(cols["ts"]) if cols["ts"] else np.zeros(0, np.int64),
        ref_pose=np.asarray(cols["ref"], dtype=np.float64).reshape(-1, 4, 4),
        lidar2ego=np.asarray(cols["lidar"], dtype=np.float64).reshape(-1, 4, 4),
        cam_files=cols["files"],
        cam_wh=np.asarray(cols["wh"], dtype=np.int64).reshape(-1, len(CAMERA_NAMES), 2),
        intrinsics=np.asarray(cols["K"], dtype=np.float64).reshape(-1, len(CAMERA_NAMES), 3, 3),
        cam2ego=np.asarray(cols["cam2ego"], dtype=np.float64).reshape(-1, len(CAMERA_NAMES), 4, 4),
        ego=np.concatenate(cols["ego"]) if cols["ego"] else np.zeros((0, 5)),
        ego_from_can=np.concatenate(cols["from_can"]) if cols["from_can"] else np.zeros(0, bool),
        control=np.concatenate(cols["ctrl"]) if cols["ctrl"] else np.zeros((0, 3)),
        control_valid=np.concatenate(cols["ctrl_ok"]) if cols["ctrl_ok"] else np.zeros(0, bool),
        ann_start=np.asarray(ann_start, dtype=np.int64),
        ann_xyz=np.asarray(ann["xyz"], dtype=np.float64).reshape(n_ann, 3),
        ann_wlh=np.asarray(ann["wlh"], dtype=np.float64).reshape(n_ann, 3),
        ann_heading=np.asarray(ann["heading"], dtype=np.float64).reshape(n_ann, 3),
        ann_category=np.asarray(ann["cat"], dtype=np.int64),
        ann_instance=np.asarray(ann["inst"], dtype=np.int64),
        categories=list(categories),
        instances=list(instances),
        labels={
            t: {**qa_labels.get(t, {}), **labels.get(t, {})} for t in cols["tokens"] if t in labels or t in qa_labels
        },
        qa={t: pairs for t, pairs in qa_by_token.items() if t in tokens},
        has_can=has_can,
        has_labels=bool(labels),
    )
