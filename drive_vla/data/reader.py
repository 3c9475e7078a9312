"""NuScenesReader: Samples (six cameras, ego state, history, future, labels, agent boxes) from any nuScenes-format dataset.

Works for real nuScenes (v1.0-mini, v1.0-trainval) and datasets written by NuScenesWriter alike. The
dataset is indexed once with nuscenes-devkit (drive_vla.data.index); with ``cache_dir`` the index and the
decoded, resized images are cached, so later epochs and later processes read no JSON tables and no JPEG.

Frames: every pose, trajectory and box is in the sample's ego frame, the ego pose at the LIDAR_TOP
capture of the keyframe (as the planning metrics use). Camera extrinsics are the camera's pose in that
frame, including the ego motion between the LiDAR and the camera capture (real logs), so boxes in the
ego frame project exactly with ``geometry.project_points``/``project_boxes``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from drive_vla.data import labels as label_rules
from drive_vla.data.drivelm import junction, qa_pairs, route_target, speed_limit
from drive_vla.data.images import ImageCache, ImageError, files_fingerprint, load_camera_image
from drive_vla.data.index import DatasetIndex, build_index, check_dataset_files, index_fingerprint
from drive_vla.geometry import invert_transform, scale_intrinsics
from drive_vla.types import (
    CAMERA_NAMES,
    FUTURE_STEPS,
    HISTORY_STEPS,
    STEP_DT_S,
    Boxes,
    Control,
    EgoState,
    Observation,
    Sample,
    SampleMeta,
    Targets,
    Trajectory,
)


def _check_image_hw(image_hw: Any) -> tuple[int, int] | None:
    if image_hw is None:
        return None
    try:
        h, w = (int(v) for v in image_hw)
    except (TypeError, ValueError):
        h = w = 0
    if h <= 0 or w <= 0:
        raise ValueError(f"image_hw: got {image_hw!r}, expected (height, width) positive integers or None")
    return h, w


class NuScenesReader:
    """Random access to the keyframes of a nuScenes-format dataset as drive-vla Samples.

    Each Sample holds: six cameras (uint8 RGB) with intrinsics and extrinsics; the ego state from the
    CAN bus ("can": pose.vel/accel/rotation_rate, vehicle_monitor.steering) or else from keyframe poses
    ("poses", backward differences); 4 history poses (extrapolated at constant velocity before the
    scene's start); the 6 future poses with a validity mask (False past the scene's end); the command
    by the nuScenes 2 m rule on that future (a labels-file "command" is not used for it); instruction,
    meta-action, explanation, control and QA from ``<version>/drive_vla_labels.json`` where present
    (instruction from the command, meta-action from labels.meta_action and control from the CAN bus
    vehicle_monitor otherwise); the other agents' boxes at each future keyframe in the current ego frame.

    Args:
        dataroot: folder holding ``<version>/`` tables, ``samples/`` and optionally ``can_bus/``.
        version: e.g. "v1.0-mini", "v1.0-trainval", "v1.0-embedded".
        split: scene split ("train", "val", "mini_train", ... for official versions, via the devkit; the
            keys of ``<version>/splits.json`` otherwise); None for every scene.
        image_hw: (height, width) to resize the cameras to (intrinsics scaled to match); None keeps
            the stored size.
        cameras: read the camera files; False gives black images of that size without reading any (for
            models that read no camera, e.g. the ego MLP).
        cache_dir: folder for the index and decoded-image cache (keyed by a hash of the inputs).
        qa_file: optional DriveLM-format QA JSON joined by sample token.
        can_bus_root: folder holding ``can_bus/`` if not ``dataroot``.

    Raises:
        DatasetError (a ValueError): missing dataroot, version folder or table, naming the path.
        SplitError (a ValueError): unknown split, listing the available ones.
    """

    def __init__(
        self,
        dataroot: str | os.PathLike,
        version: str,
        split: str | None = None,
        image_hw: tuple[int, int] | None = None,
        cache_dir: str | os.PathLike | None = None,
        qa_file: str | os.PathLike | None = None,
        *,
        cameras: bool = True,
        can_bus_root: str | os.PathLike | None = None,
    ):
        self.dataroot = Path(dataroot)
        self.version = version
        self.split = split
        self.image_hw = _check_image_hw(image_hw)
        self.cameras = bool(cameras)
        check_dataset_files(self.dataroot, version)
        can_root = Path(can_bus_root) if can_bus_root is not None else self.dataroot
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        index = None
        if self.cache_dir is not None:
            fp = index_fingerprint(self.dataroot, version, split, can_root, None if qa_file is None else str(qa_file))
            stem = self.cache_dir / f"index-{fp[:20]}"
            index = DatasetIndex.load(stem)
        if index is None:
            index = build_index(self.dataroot, version, split, can_root, qa_file)
            if self.cache_dir is not None:
                index.save(stem)
        self.index: DatasetIndex = index
        self.tokens: list[str] = list(index.tokens)
        self._pos = {t: i for i, t in enumerate(self.tokens)}
        self._scene_of = index.sample_scene
        self._image_cache = None
        self._vis: np.ndarray | None = None  # annotation visibility, read on first use
        if self.cache_dir is not None:
            key = hashlib.sha1(f"{self.dataroot.resolve()}|{version}".encode()).hexdigest()[:16]
            self._image_cache = ImageCache(self.cache_dir / f"images-{key}", self.image_hw)

    # ------------------------------------------------------------------ container protocol

    def __len__(self) -> int:
        return len(self.tokens)

    def __getitem__(self, i: int) -> Sample:
        n = len(self.tokens)
        if not -n <= int(i) < n:
            raise IndexError(f"sample index: got {i}, expected -{n} <= i < {n}")
        return self._sample(int(i) % n)

    def get(self, token: str) -> Sample:
        """The Sample of a sample token."""
        return self._sample(self.position(token))

    def position(self, token: str) -> int:
        if token not in self._pos:
            raise KeyError(f"sample token: got {token!r}, not in {self.version} split {self.split!r}")
        return self._pos[token]

    @property
    def scenes(self) -> list[str]:
        return list(self.index.scene_names)

    def scene_name(self, i: int) -> str:
        """The name of the scene sample ``i`` belongs to (from the index, without reading the sample)."""
        return str(self.index.scene_names[int(self._scene_of[i])])

    @property
    def has_can(self) -> bool:
        return bool(self.index.has_can)

    @property
    def has_labels(self) -> bool:
        return bool(self.index.has_labels)

    # ------------------------------------------------------------------ geometry from the index

    def _scene_range(self, i: int) -> tuple[int, int]:
        s = int(self._scene_of[i])
        return int(self.index.scene_start[s]), int(self.index.scene_start[s + 1])

    def _rel_pose(self, i: int, j: int) -> tuple[float, float, float]:
        rel = invert_transform(self.index.ref_pose[i]) @ self.index.ref_pose[j]
        return rel[0, 3], rel[1, 3], math.atan2(rel[1, 0], rel[0, 0])

    def future(self, i: int) -> Trajectory:
        """FUTURE_STEPS keyframe poses after sample ``i`` in its ego frame; masked past the scene's end.

        Masked steps repeat the last valid pose (the current pose if none is valid).
        """
        _, end = self._scene_range(i)
        poses = np.zeros((FUTURE_STEPS, 3))
        mask = np.zeros(FUTURE_STEPS, dtype=bool)
        last = np.zeros(3)
        for k in range(1, FUTURE_STEPS + 1):
            if i + k < end:
                last = np.array(self._rel_pose(i, i + k))
                mask[k - 1] = True
            poses[k - 1] = last
        return Trajectory(poses[:, :2].astype(np.float32), poses[:, 2].astype(np.float32), mask, STEP_DT_S)

    def history(self, i: int) -> np.ndarray:
        """(HISTORY_STEPS, 3) past keyframe poses [x, y, yaw] in the ego frame of sample ``i``, oldest first.

        Before the scene's first keyframe, poses are extrapolated backwards at constant velocity from the
        oldest known ones (at the first keyframe: from the ego speed along the current heading).
        """
        start, _ = self._scene_range(i)
        known = [np.array(self._rel_pose(i, j)) for j in range(max(start, i - HISTORY_STEPS), i)] + [np.zeros(3)]
        if len(known) >= 2:
            step = known[1] - known[0]
            step[2] = 0.0
        else:
            step = np.array([float(self.index.ego[i, 0]) * STEP_DT_S, 0.0, 0.0])
        missing = HISTORY_STEPS + 1 - len(known)
        padded = [known[0] - step * (missing - m) for m in range(missing)] + known
        return np.asarray(padded[:HISTORY_STEPS], dtype=np.float32)

    def boxes(self, token_or_index: str | int, step: int = 0) -> Boxes:
        """Boxes of the agents at keyframe ``i + step`` in the ego frame of keyframe ``i`` (empty past the scene)."""
        i = self.position(token_or_index) if isinstance(token_or_index, str) else int(token_or_index)
        start, end = self._scene_range(i)
        j = i + step
        if not start <= j < end:
            return Boxes.empty()
        ix = self.index
        a, b = int(ix.ann_start[j]), int(ix.ann_start[j + 1])
        world2ego = invert_transform(ix.ref_pose[i])
        xyz = ix.ann_xyz[a:b] @ world2ego[:3, :3].T + world2ego[:3, 3]
        heading = ix.ann_heading[a:b] @ world2ego[:3, :3].T
        wlh = ix.ann_wlh[a:b]
        return Boxes(
            xyz=xyz.astype(np.float32),
            lwh=wlh[:, [1, 0, 2]].astype(np.float32),
            yaw_rad=np.arctan2(heading[:, 1], heading[:, 0]).astype(np.float32),
            category=tuple(ix.categories[c] for c in ix.ann_category[a:b]),
            instance=tuple(ix.instances[k] for k in ix.ann_instance[a:b]),
        )

    def lidar2ego(self, i: int) -> np.ndarray:
        """(4, 4) LIDAR_TOP mount of sample ``i`` from its own calibrated_sensor record (nominal where none)."""
        return self.index.lidar2ego[int(i)].copy()

    def ego_pose(self, i: int) -> np.ndarray:
        """(4, 4) ego2global of sample ``i`` at its LIDAR_TOP capture (the sample's ego frame)."""
        return self.index.ref_pose[int(i)].copy()

    def annotations(self, i: int, step: int = 0) -> dict[str, Any] | None:
        """Global-frame annotations at keyframe ``i + step`` (None outside the scene), as the metric protocols read them.

        Returns:
            {"xyz": (M, 3), "heading": (M, 3) length axis, "wlh": (M, 3), "category": M names,
            "instance": M tokens, "visibility": (M,) int visibility tokens 1..4}.
        """
        start, end = self._scene_range(int(i))
        j = int(i) + int(step)
        if not start <= j < end:
            return None
        ix = self.index
        a, b = int(ix.ann_start[j]), int(ix.ann_start[j + 1])
        return {
            "xyz": ix.ann_xyz[a:b],
            "heading": ix.ann_heading[a:b],
            "wlh": ix.ann_wlh[a:b],
            "category": tuple(ix.categories[c] for c in ix.ann_category[a:b]),
            "instance": tuple(ix.instances[k] for k in ix.ann_instance[a:b]),
            "visibility": self._visibility()[a:b],
        }

    def _visibility(self) -> np.ndarray:
        """Visibility token of every indexed annotation, read once from sample_annotation.json.

        The devkit lists a sample's ``anns`` in the table's order, which is the index's order.
        """
        if self._vis is None:
            path = self.dataroot / self.version / "sample_annotation.json"
            by_sample: dict[str, list[int]] = {}
            for rec in json.loads(path.read_text()):
                by_sample.setdefault(rec["sample_token"], []).append(int(rec.get("visibility_token") or 4))
            vis = np.zeros(int(self.index.ann_start[-1]) if len(self.index.ann_start) else 0, dtype=np.int8)
            for k, token in enumerate(self.tokens):
                a, b = int(self.index.ann_start[k]), int(self.index.ann_start[k + 1])
                got = by_sample.get(token, [])
                if len(got) != b - a:
                    raise ValueError(f"{path}: sample {token} has {len(got)} annotations, the index {b - a}")
                vis[a:b] = got
            self._vis = vis
        return self._vis

    def trajectories(self) -> list[Trajectory]:
        """Future Trajectory of every sample (no image is read), e.g. to fit action tokenizers."""
        return [self.future(i) for i in range(len(self))]

    def texts(self, i: int) -> list[str]:
        """The language of sample ``i`` without reading an image: instruction, explanation, QA questions and
        answers (e.g. to fit a text tokenizer); empty strings are left out."""
        label = self.index.labels.get(self.tokens[i], {})
        instruction = label.get("instruction")
        if not instruction:
            traj = self.future(i)
            instruction = label_rules.instruction_for_command(label_rules.command_from_trajectory(traj.xy, traj.mask))
        return label_rules.language_texts(instruction, label.get("explanation"), self.qa(i))

    def qa(self, i: int) -> list[tuple[str, str]]:
        """(question, answer) pairs of sample ``i`` (labels file, then QA file) without reading an image."""
        token = self.tokens[i]
        return qa_pairs(self.index.labels.get(token, {})) + [(q, a) for q, a in self.index.qa.get(token, [])]

    def ego_state(self, i: int) -> EgoState:
        speed, ax, ay, yaw_rate, steer = (float(v) for v in self.index.ego[i])
        return EgoState(
            speed_mps=float(np.clip(speed, -20.0, 100.0)),
            accel_mps2=np.clip([ax, ay], -50.0, 50.0).astype(np.float32),
            yaw_rate_rps=float(np.clip(yaw_rate, -10.0, 10.0)),
            steer=float(np.clip(steer, -1.0, 1.0)),
            source="can" if self.index.ego_from_can[i] else "poses",
        )

    # ------------------------------------------------------------------ images

    def camera_paths(self, i: int) -> list[Path]:
        return [self.dataroot / f for f in self.index.cam_files[i]]

    def intrinsics(self, i: int) -> dict[str, np.ndarray]:
        """Camera intrinsics of sample ``i`` at the reader's image size."""
        out = {}
        for c, cam in enumerate(CAMERA_NAMES):
            k = self.index.intrinsics[i, c]
            if self.image_hw is not None:
                w, h = (int(v) for v in self.index.cam_wh[i, c])
                k = scale_intrinsics(k, self.image_hw[1], self.image_hw[0], src_wh=(w, h))
            out[cam] = np.asarray(k, dtype=np.float32)
        return out

    def images(self, i: int) -> dict[str, np.ndarray]:
        """The six camera images of sample ``i`` (uint8 RGB, at ``image_hw`` if set), from the cache if valid."""
        if not self.cameras:
            return {
                cam: np.zeros((*(self.image_hw or self.index.cam_wh[i, c][::-1]), 3), np.uint8)
                for c, cam in enumerate(CAMERA_NAMES)
            }
        paths = self.camera_paths(i)
        token = self.tokens[i]
        fp = None
        if self._image_cache is not None:
            fp = files_fingerprint(paths, extra=str(self.image_hw))
            cached = self._image_cache.load(token, fp)
            if cached is not None:
                return {cam: cached[c] for c, cam in enumerate(CAMERA_NAMES)}
        imgs = []
        for c, path in enumerate(paths):
            wh = tuple(int(v) for v in self.index.cam_wh[i, c])
            try:
                img, _ = load_camera_image(path, wh, self.index.intrinsics[i, c], self.image_hw)
            except ImageError as exc:  # name the record as well as the file
                raise ImageError(f"sample {token}, camera {CAMERA_NAMES[c]}: {exc}") from None
            imgs.append(img)
        if self._image_cache is not None and len({im.shape for im in imgs}) == 1:
            self._image_cache.store(token, fp, np.stack(imgs))
        return dict(zip(CAMERA_NAMES, imgs))

    # ------------------------------------------------------------------ samples

    def _sample(self, i: int) -> Sample:
        ix = self.index
        token = self.tokens[i]
        label = ix.labels.get(token, {})
        traj = self.future(i)
        ego = self.ego_state(i)
        command = label_rules.command_from_trajectory(traj.xy, traj.mask)
        obs = Observation(
            images=self.images(i),
            intrinsics=self.intrinsics(i),
            extrinsics={cam: ix.cam2ego[i, c].astype(np.float32) for c, cam in enumerate(CAMERA_NAMES)},
            ego=ego,
            history=self.history(i),
            command=command,
            instruction=label.get("instruction") or label_rules.instruction_for_command(command),
            timestamp_s=float(ix.timestamp_us[i]) / 1e6,
            route_target=route_target(label, f"drive_vla_labels.json[{token}]"),
            speed_limit_mps=speed_limit(label, f"drive_vla_labels.json[{token}]"),
            junction_m=junction(label, f"drive_vla_labels.json[{token}]"),
        )
        control = None
        if "control" in label:
            c = label["control"]
            control = Control(
                float(np.clip(c["steer"], -1, 1)), float(np.clip(c["throttle"], 0, 1)), float(np.clip(c["brake"], 0, 1))
            )
        elif ix.control_valid[i]:
            control = Control(*(float(v) for v in ix.control[i]))
        qa = self.qa(i)
        targets = Targets(
            trajectory=traj,
            control=control,
            meta_action=label.get("meta_action")
            or label_rules.meta_action(ego.speed_mps, traj.xy, traj.mask, traj.dt_s),
            explanation=label.get("explanation"),
            qa=tuple(qa),
            future_boxes=tuple(self.boxes(i, k) for k in range(1, FUTURE_STEPS + 1)),
            boxes=self.boxes(i, 0),
        )
        start, _ = self._scene_range(i)
        meta = SampleMeta(token=token, scene=self.scene_name(i), dataset=self.version, index_in_scene=i - start)
        return Sample(observation=obs, targets=targets, meta=meta)

    def stats(self) -> dict[str, Any]:
        """Counts for reports: scenes, samples, annotations, CAN bus and labels presence."""
        return {
            "version": self.version,
            "split": self.split,
            "scenes": len(self.index.scene_names),
            "samples": len(self),
            "annotations": int(self.index.ann_start[-1]) if len(self.index.ann_start) else 0,
            "can_bus": self.has_can,
            "samples_with_can": int(self.index.ego_from_can.sum()),
            "labels": self.has_labels,
            "samples_with_labels": len(self.index.labels),
            "samples_with_qa": sum(
                bool(self.index.labels.get(t, {}).get("QA")) or t in self.index.qa for t in self.tokens
            ),
        }
