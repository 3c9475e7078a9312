"""The published open-loop protocols: each one's grid, agents, sample set and averaging, as its own code has them.

Every rule below names the peer file and function it follows. What differs between the peers:

========  ===============================  ==================================  =========================
protocol  agents drawn                     samples                             number at N s
========  ===============================  ==================================  =========================
stp3      vehicle.* and human.* instances  2 past + present + 6 future frames  mean of steps 1..2N
          seen (visibility != 1) in the    in one scene; CAN-blacklisted
          past or present frames, at each  scenes dropped
          future frame, any visibility
uniad     UniAD's vehicle classes (no      every sample; missing future steps  step 2N, over all samples
          emergency vehicles), every       count 0
          future box, any visibility
odv       UniAD's agents, raster mirrored  every sample; missing steps 0       two tables: step 2N, and
          left-right                                                           mean of steps 1..2N
========  ===============================  ==================================  =========================

VAD (``metric_stp3.py``) draws the current agents moved along their ground-truth futures on a grid whose
rows run from 50 m ahead downward; it is not reproduced, so no table carries VAD's name.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from drive_vla.eval.occupancy import (
    GROUP_CODE,
    ODV_GRID,
    STP3_GRID,
    UNIAD_GRID,
    AgentBoxes,
    GridLayout,
    uniad_yaw_to_heading,
)
from drive_vla.types import FUTURE_STEPS

# ST-P3 stp3/datas/NuscenesData.py FuturePredictionDataset.get_scenes: scene-0419 and the devkit's
# NuScenesCanBus.can_blacklist (scenes without CAN data) are removed from the split.
STP3_SCENE_BLACKLIST = frozenset(
    f"scene-{n:04d}"
    for n in (
        419,
        161,
        162,
        163,
        164,
        165,
        166,
        167,
        168,
        170,
        171,
        172,
        173,
        174,
        175,
        176,
        309,
        310,
        311,
        312,
        313,
        314,
    )
)
STP3_PAST_FRAMES = 2  # stp3/config.py TIME_RECEPTIVE_FIELD = 3 (past + present), Planning.yml N_FUTURE_FRAMES = 6

# UniAD occflow_label.py GenerateOccFlowLabels: vehicle_classes, mapped from nuScenes categories by
# mmdet3d NuScenesDataset.NameMapping (vehicle.emergency.* has no mapping, so it is never drawn).
UNIAD_VEHICLE_CATEGORIES = frozenset(
    {
        "vehicle.car", "vehicle.truck", "vehicle.construction", "vehicle.bus.bendy", "vehicle.bus.rigid",
        "vehicle.trailer", "vehicle.motorcycle", "vehicle.bicycle",
    }
)  # fmt: skip
UNIAD_VEHICLE_CLASSES = frozenset({"car", "truck", "construction_vehicle", "bus", "trailer", "motorcycle", "bicycle"})


@dataclass(frozen=True)
class Protocol:
    """How one published table turns per-step L2 and collision into its numbers.

    Attributes:
        name: key in reports.
        label: human label used in tables.
        layout: the occupancy grid of its code (GridLayout); None for the box-overlap diagnostic.
        agents: which agent selection feeds the grid ("stp3" or "uniad").
        aggregation: "mean_to_horizon" (mean over steps 1..2N) or "at_horizon" (step 2N alone).
        sample_set: "stp3" (ST-P3's sequence rule), "full_future" or "all" (missing steps count 0).
        source: the peer file and function the averaging follows.
        published: False for diagnostics that no paper reports.
    """

    name: str
    label: str
    layout: GridLayout | None
    agents: str
    aggregation: str
    sample_set: str
    source: str
    published: bool = True

    def describe(self) -> str:
        how = "mean over steps 0.5 s..N s" if self.aggregation == "mean_to_horizon" else "value at step N s"
        samples = {
            "stp3": "ST-P3's samples (2 past and 6 future keyframes in the scene)",
            "full_future": "samples with the full 6-step future",
            "all": "all samples, missing steps count 0",
        }[self.sample_set]
        tail = f"; follows {self.source}" if self.published else "; NOT a published protocol"
        return f"{self.label}: {how}; {samples}{tail}"


STP3 = Protocol(
    "stp3", "ST-P3", STP3_GRID, "stp3", "mean_to_horizon", "stp3", "ST-P3 evaluate.py eval + stp3/metrics.py"
)
UNIAD = Protocol(
    "uniad", "UniAD", UNIAD_GRID, "uniad", "at_horizon", "all", "UniAD uniad/apis/test.py + planning_metrics.py"
)
ODV_UNIAD = Protocol(
    "odv_uniad", "OpenDriveVLA 'UniAD evaluation'", ODV_GRID, "uniad", "at_horizon", "all",
    "OpenDriveVLA drivevla/eval_share/evaluation.py planning_evaluation (first table)",
)  # fmt: skip
ODV_STP3 = Protocol(
    "odv_stp3", "OpenDriveVLA 'STP-3 evaluation'", ODV_GRID, "uniad", "mean_to_horizon", "all",
    "OpenDriveVLA drivevla/eval_share/evaluation.py planning_evaluation (second table)",
)  # fmt: skip
BOX_OVERLAP = Protocol(
    "box_overlap", "box overlap (rotated ego)", None, "stp3", "mean_to_horizon", "full_future", "", published=False
)
PROTOCOLS: dict[str, Protocol] = {p.name: p for p in (STP3, UNIAD, ODV_UNIAD, ODV_STP3)}
ALIASES: dict[str, tuple[str, ...]] = {"odv": ("odv_uniad", "odv_stp3")}


def resolve_protocols(protocol: str | Sequence[str]) -> list[Protocol]:
    """ "all" | "stp3" | "uniad" | "odv" (both OpenDriveVLA tables) | a list of those -> Protocol objects."""
    names = list(PROTOCOLS) if protocol == "all" else [protocol] if isinstance(protocol, str) else list(protocol)
    names = [n for name in names for n in ALIASES.get(name, (name,))]
    bad = [p for p in names if p not in PROTOCOLS]
    if bad or not names:
        choices = ["all", *PROTOCOLS, *ALIASES]
        raise ValueError(f"protocol: got {protocol!r}, expected one of {choices} or a list of them")
    return [PROTOCOLS[p] for p in dict.fromkeys(names)]


@dataclass(frozen=True)
class SampleAgents:
    """The annotated boxes around one sample, as the protocols' label code reads them.

    Attributes:
        step: (M,) keyframe offset from the sample (-2..6; 0 is the sample itself).
        xyz: (M, 3) box centres in the frame of ``ego2global`` (the global frame for nuScenes records).
        heading: (M, 3) direction of each box's length axis in that frame.
        wlh: (M, 3) width, length, height, metres.
        category: M nuScenes category names.
        instance: M instance tokens.
        visibility: (M,) nuScenes visibility token 1..4 (1 = 0-40 % visible).
        ego2global: (4, 4) ego pose at the sample's LIDAR_TOP capture.
        lidar2ego: (4, 4) the sample's own LIDAR_TOP calibration.
        past_known: False when only the future boxes are known (no past frames, no visibility): ST-P3's
            first-seen rule then keeps every future instance.
        future_ego2global: (6, 4, 4) ego poses of the next six keyframes when the scene has them: ST-P3's
            boxes of each future step are then drawn in that step's own frame and ``stp3_warps`` resamples
            their rasters into the present, as ST-P3's trainer does; None: drawn in the present frame.
        step_ego2global: (6, 4, 4) ego pose (LIDAR_TOP capture) of each future keyframe 1..6 that exists, NaN rows
            past the end of the scene: UniAD puts each future box at its bottom in that keyframe's LiDAR frame and
            reframes it through the global frame (``uniad_boxes``). None: every box is taken as annotated at
            ``ego2global``. Unlike ``future_ego2global`` it never switches ST-P3's warp.
    """

    step: np.ndarray
    xyz: np.ndarray
    heading: np.ndarray
    wlh: np.ndarray
    category: tuple[str, ...]
    instance: tuple[str, ...]
    visibility: np.ndarray
    ego2global: np.ndarray
    lidar2ego: np.ndarray
    past_known: bool = True
    future_ego2global: np.ndarray | None = None
    step_ego2global: np.ndarray | None = None

    def _boxes(self, sample: int, keep: np.ndarray, xy: np.ndarray, yaw: np.ndarray) -> AgentBoxes:
        groups = [GROUP_CODE["pedestrian"] if "human" in c else GROUP_CODE["vehicle"] for c in self.category]
        return AgentBoxes(
            np.full(int(keep.sum()), sample, dtype=np.int64),
            self.step[keep] - 1,
            xy[keep],
            self.wlh[keep, 1].astype(np.float64),
            self.wlh[keep, 0].astype(np.float64),
            yaw[keep],
            np.asarray(groups, dtype=np.int8).reshape(-1)[keep],
        )

    def stp3_boxes(self, sample: int) -> AgentBoxes:
        """ST-P3's future agents in its raster frame (columns = ego y, rows = ego x).

        Follows stp3/datas/NuscenesData.py: ``get_birds_eye_view_label`` (visibility '1' skipped and
        instances registered in the past and present frames, vehicle/human by substring; future frames
        draw registered instances only, any visibility) and ``_get_top_lidar_pose`` (the ego pose of the
        LIDAR_TOP sample_data, yaw-only rotation, the yaw of pyquaternion's ``yaw_pitch_roll``, which differs
        from atan2(R[1, 0], R[0, 0]) by about pitch x roll). ST-P3 draws each future frame in its own ego frame and
        warps the raster to the present with nearest-neighbour ``grid_sample`` (stp3/trainer.py
        ``prepare_future_labels``): with ``future_ego2global`` the boxes of step k are in step k's frame and
        ``stp3_warps`` gives the warp; without it they are drawn directly in the present frame.
        """
        thing = np.array([("vehicle" in c) or ("human" in c) for c in self.category], dtype=bool)
        seen = (self.step <= 0) & thing & (self.visibility != 1)
        registered = {self.instance[i] for i in np.flatnonzero(seen)}
        first_seen = np.array([t in registered or not self.past_known for t in self.instance], dtype=bool)
        keep = (self.step >= 1) & thing & first_seen
        ego_xy, ego_heading = np.zeros((len(self.step), 2)), np.zeros((len(self.step), 2))
        for k in np.unique(self.step[keep]):
            pose = self.ego2global if self.future_ego2global is None else self.future_ego2global[int(k) - 1]
            yaw = stp3_yaw(pose)
            c, s = math.cos(yaw), math.sin(yaw)
            rot = np.array([[c, s], [-s, c]])  # global -> that frame's ego, yaw only
            at = self.step == k
            ego_xy[at] = (self.xyz[at, :2] - pose[:2, 3]) @ rot.T
            ego_heading[at] = self.heading[at, :2] @ rot.T
        return self._boxes(sample, keep, ego_xy[:, ::-1], np.arctan2(ego_heading[:, 0], ego_heading[:, 1]))

    def stp3_warps(self) -> np.ndarray:
        """(6, 2, 3) affines taking each future step's ST-P3 raster into the present (``stp3_warp.stp3_warps``);
        NaN where the boxes are already in the present frame (no future poses)."""
        from drive_vla.eval.stp3_warp import stp3_warps

        if self.future_ego2global is None:
            return np.full((FUTURE_STEPS, 2, 3), np.nan, dtype=np.float32)
        return stp3_warps(self.ego2global, self.future_ego2global)

    def uniad_boxes(self, sample: int) -> AgentBoxes:
        """UniAD's future agents in its raster frame (the current LiDAR frame: columns x, rows y).

        Follows UniAD occflow_label.py ``GenerateOccFlowLabels.__call__`` with the configs'
        ``only_vehicle=True, filter_invisible=False`` and ``reframe_boxes`` (future LiDAR boxes through
        lidar2ego and ego2global into the current LiDAR frame), fed by nuscenes_e2e_dataset.py
        ``occ_get_detection_ann_info`` (no valid-flag filter). The box convention is that of UniAD's code
        before its move to mmdet3d 1.x (commit cdc9f63, mmdet3d v0.17.1: length along the heading); UniAD's
        later code under mmdet3d 1.x draws boxes transposed (self-built infos) or with a mirrored heading
        (the released v1.0 infos), so its numbers differ from the paper's and from these. Centres and yaws are
        UniAD's float32 values (``uniad_reframe``: bottom centre in each box's own keyframe LiDAR frame, then
        the 3D reframing), to be drawn by a ``float32_boxes`` layout (UNIAD_GRID, ODV_GRID).
        """
        keep = (self.step >= 1) & np.array(
            [c in UNIAD_VEHICLE_CATEGORIES or c in UNIAD_VEHICLE_CLASSES for c in self.category], dtype=bool
        )
        poses = np.broadcast_to(np.asarray(self.ego2global, dtype=np.float64), (len(self.step), 4, 4)).copy()
        if self.step_ego2global is not None:
            step_poses = np.asarray(self.step_ego2global, dtype=np.float64)
            if step_poses.shape != (FUTURE_STEPS, 4, 4):
                raise ValueError(f"step_ego2global: got shape {step_poses.shape}, expected ({FUTURE_STEPS}, 4, 4)")
            poses[keep] = step_poses[self.step[keep] - 1]
            if not np.all(np.isfinite(poses[keep])):
                bad = sorted({int(k) for k in self.step[keep][~np.isfinite(poses[keep]).all(axis=(1, 2))]})
                raise ValueError(f"step_ego2global: got NaN poses for steps {bad} that have boxes, expected finite")
        xy, yaw = np.zeros((len(self.step), 2)), np.zeros(len(self.step))
        xy[keep], yaw[keep] = uniad_reframe(
            self.xyz[keep], self.heading[keep], self.wlh[keep], poses[keep], self.ego2global, self.lidar2ego
        )
        return self._boxes(sample, keep, xy, yaw)

    def boxes_for(self, agents: str, sample: int) -> AgentBoxes:
        if agents == "stp3":
            return self.stp3_boxes(sample)
        if agents == "uniad":
            return self.uniad_boxes(sample)
        raise ValueError(f"agents: got {agents!r}, expected 'stp3' or 'uniad'")


def uniad_reframe(
    xyz: np.ndarray,
    heading: np.ndarray,
    wlh: np.ndarray,
    box_ego2global: np.ndarray,
    ego2global: np.ndarray,
    lidar2ego: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Global boxes of future keyframes -> UniAD's float32 centres (x, y) and headings in the present LiDAR frame.

    Reproduces UniAD's arithmetic (commit cdc9f63 with mmdet3d v0.17.1):

    1. tools/data_converter/uniad_nuscenes_converter.py ``_fill_trainval_infos`` (nuScenes devkit
       ``get_sample_data``, float64): the centre in the box's own keyframe LiDAR frame, and the yaw
       ``-Quaternion.yaw_pitch_roll[0] - pi/2`` of its orientation there. pyquaternion's yaw is
       atan2(-R[0, 1], R[0, 0]) of the rotation matrix, i.e. it reads the box's lateral axis as well; the
       annotation is taken as yaw-only (nuScenes annotation quaternions have x = y = 0), so that axis is
       z x heading (for a heading with a z component: the box without roll).
    2. nuscenes_e2e_dataset.py ``occ_get_detection_ann_info``: ``LiDARInstance3DBoxes(gt_boxes,
       origin=(0.5, 0.5, 0.5))`` casts to float32 and moves z down by h/2 (base_box3d.py ``__init__``): the
       bottom centre along that keyframe's LiDAR z axis, not the box's own.
    3. occflow_label.py ``GenerateOccFlowLabels.reframe_boxes``, all float32 (``occ_get_transforms`` casts the
       poses): rotate by that keyframe's lidar2ego rotation, add its translation, rotate by its ego2global
       rotation, add its translation, subtract the present ego2global translation, rotate by
       ``np.linalg.inv`` of the present ego2global rotation, subtract the lidar2ego translation, rotate by the
       inverse lidar2ego rotation. Each rotation is lidar_box3d.py ``rotate`` with a matrix: ``xyz @ R.T``
       (summed over x, y, z in that order, as torch's float32 CPU matmul does) and ``yaw += arctan2(R[0, 1],
       R[0, 0])`` in float32.

    The global coordinates (hundreds of metres) are float32 in step 3, which moves a corner by up to ~1e-4 m:
    enough to decide a corner on a half cell. The keyframes share the sample's LIDAR_TOP calibration
    (``lidar2ego``), as a nuScenes scene does.

    Args:
        xyz, heading, wlh: (M, 3) global centres, length-axis directions and sizes (w, l, h).
        box_ego2global: (M, 4, 4) ego pose of each box's keyframe.
        ego2global, lidar2ego: (4, 4) present ego pose and LIDAR_TOP mount.

    Returns:
        xy (M, 2) float32 values as float64; heading (M,) CCW from +x (``occupancy.uniad_yaw_to_heading``
        of UniAD's float32 yaw, which the float32 corner code recovers exactly).
    """
    f32 = np.float32
    xyz, heading = np.asarray(xyz, dtype=np.float64).reshape(-1, 3), np.asarray(heading, dtype=np.float64)
    poses = np.asarray(box_ego2global, dtype=np.float64).reshape(-1, 4, 4)
    e_rot, e_t = poses[:, :3, :3], poses[:, :3, 3]
    l_rot, l_t = np.asarray(lidar2ego, dtype=np.float64)[:3, :3], np.asarray(lidar2ego, dtype=np.float64)[:3, 3]
    # 1. converter, float64: global -> keyframe ego -> keyframe LiDAR; pyquaternion yaw of the orientation there
    ego = np.einsum("mji,mj->mi", e_rot, xyz - e_t)
    centre = (ego - l_t) @ l_rot
    lidar_x = np.einsum("mij,j->mi", e_rot, l_rot[:, 0])  # the keyframe LiDAR x axis in the global frame
    lateral = np.stack([-heading[:, 1], heading[:, 0], np.zeros(len(heading))], 1)
    lateral /= np.maximum(np.linalg.norm(lateral, axis=1, keepdims=True), 1e-12)
    yaw = np.arctan2(-(lidar_x * lateral).sum(1), (lidar_x * heading).sum(1))
    theta = (-yaw - math.pi / 2).astype(f32)
    # 2. LiDARInstance3DBoxes(origin=(0.5, 0.5, 0.5)): float32, bottom centre
    p = centre.astype(f32)
    p[:, 2] = p[:, 2] + np.asarray(wlh, dtype=f32).reshape(-1, 3)[:, 2] * f32(-0.5)

    # 3. reframe_boxes in float32
    def rotate(p: np.ndarray, theta: np.ndarray, rot: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rot = rot.astype(f32)  # (3, 3) or (M, 3, 3); p @ rot.T, the sum over x, y, z in that order
        out = (p[:, 0:1] * rot[..., :, 0] + p[:, 1:2] * rot[..., :, 1]) + p[:, 2:3] * rot[..., :, 2]
        return out, theta + np.arctan2(rot[..., 0, 1], rot[..., 0, 0])

    e0_rot, e0_t = np.asarray(ego2global, dtype=np.float64)[:3, :3], np.asarray(ego2global, dtype=np.float64)[:3, 3]
    p, theta = rotate(p, theta, l_rot.astype(f32))
    p = p + l_t.astype(f32)
    p, theta = rotate(p, theta, e_rot.astype(f32))
    p = p + e_t.astype(f32)
    p = p + -e0_t.astype(f32)
    p, theta = rotate(p, theta, np.linalg.inv(e0_rot.astype(f32)))
    p = p + -l_t.astype(f32)
    p, theta = rotate(p, theta, np.linalg.inv(l_rot.astype(f32)))
    return p[:, :2].astype(np.float64), uniad_yaw_to_heading(theta)


def stp3_yaw(ego2global: np.ndarray) -> float:
    """The ego yaw as ST-P3 ``_get_top_lidar_pose`` takes it: ``Quaternion(rotation).yaw_pitch_roll[0]``."""
    from pyquaternion import Quaternion

    rot = np.asarray(ego2global, dtype=np.float64)[:3, :3]
    return float(Quaternion(matrix=rot, atol=1e-6).yaw_pitch_roll[0])


def stp3_in_sample_set(scene: str, index_in_scene: int, full_future: bool) -> bool:
    """ST-P3 stp3/datas/NuscenesData.py ``get_indices``/``get_scenes``: 2 past and 6 future keyframes in the scene."""
    return full_future and index_in_scene >= STP3_PAST_FRAMES and scene not in STP3_SCENE_BLACKLIST


def raster_boxes_from_lidar(boxes: AgentBoxes, agents: str, lidar2ego: np.ndarray) -> AgentBoxes:
    """Group-coded LiDAR-frame boxes (e.g. generated cases) -> a protocol's raster-frame boxes.

    Without category names, instances and visibility, "stp3" keeps vehicles and pedestrians and "uniad"
    vehicles; the ST-P3 raster frame is the ego frame reached through ``lidar2ego``.
    """
    groups = ("vehicle", "pedestrian") if agents == "stp3" else ("vehicle",)
    keep = np.isin(boxes.group, [GROUP_CODE[g] for g in groups])
    xy, yaw = boxes.xy[keep], boxes.yaw_rad[keep]
    if agents == "stp3":
        rot = np.asarray(lidar2ego, dtype=np.float64)[:2, :2]
        ego_xy = xy @ rot.T + np.asarray(lidar2ego, dtype=np.float64)[:2, 3]
        ego_heading = np.stack([np.cos(yaw), np.sin(yaw)], -1) @ rot.T
        xy, yaw = ego_xy[:, ::-1], np.arctan2(ego_heading[:, 0], ego_heading[:, 1])
    elif agents != "uniad":
        raise ValueError(f"agents: got {agents!r}, expected 'stp3' or 'uniad'")
    return AgentBoxes(
        boxes.sample[keep], boxes.step[keep], xy, boxes.length_m[keep], boxes.width_m[keep], yaw, boxes.group[keep]
    )
