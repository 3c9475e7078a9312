"""NuScenesReader on the real nuScenes keyframe written along a known ego path (no CAN bus)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from nuscenes.nuscenes import NuScenes
from nuscenes_factory import PATH_SPEED_MPS, path_pose

from drive_vla import geometry as g
from drive_vla.data import labels
from drive_vla.data.reader import NuScenesReader
from drive_vla.types import CAMERA_NAMES, Command


@pytest.fixture(scope="module")
def reader(keyframe_dataset):
    return NuScenesReader(keyframe_dataset.dataroot, keyframe_dataset.version)


def _expected_future(i: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    ref = path_pose(0.5 * i)
    steps = [k for k in range(1, 7) if i + k < n]
    local = g.global_poses_to_local(np.array([path_pose(0.5 * (i + k)) for k in steps]).reshape(-1, 3), ref)
    return local, np.array([i + k < n for k in range(1, 7)])


def test_devkit_loads_the_written_keyframe_dataset(keyframe_dataset):
    nusc = NuScenes(keyframe_dataset.version, str(keyframe_dataset.dataroot), verbose=False)
    assert len(nusc.sample) == 12 and len(nusc.instance) == 68  # 69 boxes minus the one 'ignored'
    sd = nusc.get("sample_data", nusc.sample[0]["data"]["CAM_FRONT"])
    assert (sd["width"], sd["height"]) == (1600, 900)
    assert sd["timestamp"] == round(keyframe_dataset.keyframe["cameras"]["CAM_FRONT"]["timestamp_s"] * 1e6)


def test_images_are_the_real_frames_byte_for_byte(reader, keyframe_dataset, keyframe_dir):
    obs = reader[0].observation
    for cam in CAMERA_NAMES:
        original = cv2.cvtColor(
            cv2.imread(str(keyframe_dir / keyframe_dataset.keyframe["cameras"][cam]["image"])), cv2.COLOR_BGR2RGB
        )
        assert obs.images[cam].shape == (900, 1600, 3) and obs.images[cam].dtype == np.uint8
        np.testing.assert_array_equal(obs.images[cam], original)
        np.testing.assert_allclose(obs.intrinsics[cam], keyframe_dataset.keyframe["cameras"][cam]["cam2img"], rtol=1e-6)


@pytest.mark.parametrize("sample_index", [0, 5])
def test_projected_boxes_land_on_published_centres(reader, keyframe_dataset, sample_index):
    """At keyframe 0 boxes project onto the published 2D centres; keyframe 5 checks the same after the
    ego moved (the boxes are static in the world, so at 5 they are compared with the moved camera)."""
    kf = keyframe_dataset.keyframe
    sample = reader[sample_index]
    boxes = reader.boxes(sample_index)
    assert len(boxes) == 68 and set(boxes.category) >= {"vehicle.car", "human.pedestrian.adult"}
    worst, checked = 0.0, 0
    for cam, cam_boxes in kf["camera_boxes"].items():
        uv, depth, valid = g.project_points(
            boxes.xyz, sample.observation.extrinsics[cam], sample.observation.intrinsics[cam]
        )
        for b in cam_boxes:
            err = np.where(valid, np.linalg.norm(uv - np.array(b["center_2d"]), axis=1), np.inf)
            worst = max(worst, float(err.min()))
            checked += 1
    assert checked == 84
    if sample_index == 0:
        assert worst < 0.01
    else:
        assert worst > 5.0  # the ego drove 10 m: the same static boxes project elsewhere


def test_box_sizes_and_yaw_follow_the_lidar_boxes(reader, keyframe_dataset):
    kf = keyframe_dataset.keyframe
    lidar2ego = np.array(kf["lidar2ego"])
    boxes = reader.boxes(0)
    kept = [b for b in kf["lidar_boxes"] if b["category"] != "ignored"]
    raw = np.array([b["box"] for b in kept])
    np.testing.assert_allclose(boxes.lwh, raw[:, 3:6], atol=1e-5)  # size_x is the length
    np.testing.assert_allclose(boxes.xyz, g.transform_points(lidar2ego, raw[:, :3]), atol=1e-4)
    car = next(i for i, b in enumerate(kept) if b["category"] == "car")
    lidar_yaw = np.arctan2(lidar2ego[1, 0], lidar2ego[0, 0])
    assert float(g.wrap_angle(boxes.yaw_rad[car] - (raw[car, 6] + lidar_yaw))) == pytest.approx(0.0, abs=0.03)


def test_future_waypoints_equal_the_known_path_and_masks_at_scene_end(reader):
    n = len(reader)
    assert n == 12
    for i in range(n):
        traj = reader[i].targets.trajectory if i in (0, 4, 9, 11) else reader.future(i)
        expected, mask = _expected_future(i, n)
        np.testing.assert_array_equal(traj.mask, mask)
        np.testing.assert_allclose(traj.xy[traj.mask], expected[:, :2], atol=2e-4)
        np.testing.assert_allclose(traj.yaw_rad[traj.mask], expected[:, 2], atol=2e-5)
    assert reader.future(8).mask.tolist() == [True, True, True, False, False, False]
    assert not reader.future(11).mask.any()
    assert len(reader.trajectories()) == n


def test_commands_follow_the_2m_rule(reader):
    commands = [reader[i].observation.command for i in range(0, 12, 4)]
    for i, cmd in zip(range(0, 12, 4), commands):
        expected, _ = _expected_future(i, len(reader))
        assert cmd == labels.command_from_trajectory(expected[:, :2])
    # by hand: from t=0 the path ends 0.53 m left (straight), from t=2 s the 15 m arc ends 4.55 m left
    assert commands[0] == Command.STRAIGHT and commands[1] == Command.LEFT
    assert reader[4].observation.instruction == labels.instruction_for_command(Command.LEFT)


def test_ego_state_and_history_come_from_poses_without_can(reader):
    s = reader[3].observation
    assert s.ego.source == "poses" and s.ego.speed_mps == pytest.approx(PATH_SPEED_MPS, abs=1e-3)
    expected = g.global_poses_to_local(np.array([path_pose(0.5 * k) for k in range(-1, 3)]), path_pose(1.5))
    np.testing.assert_allclose(s.history[1:], expected[1:], atol=1e-4)  # keyframes 0, 1, 2
    np.testing.assert_allclose(s.history[0], [-8.0, 0.0, 0.0], atol=1e-3)  # extrapolated before the scene
    on_arc = reader[8].observation.ego
    assert on_arc.yaw_rate_rps == pytest.approx(PATH_SPEED_MPS / 15.0, rel=1e-3)
    assert reader[8].targets.control is None


def test_future_boxes_are_in_the_current_ego_frame(reader):
    sample = reader[2]
    assert len(sample.targets.future_boxes) == 6
    now = reader.boxes(2)
    for k, fb in enumerate(sample.targets.future_boxes, start=1):
        # the agents are static in the world, so in the CURRENT ego frame they do not move
        np.testing.assert_allclose(fb.xyz, now.xyz, atol=1e-4)
        assert fb.instance == now.instance
        assert len(fb) == (68 if 2 + k < 12 else 0)
