"""Geometry: hand-computed conversions, round trips, and projection against a real nuScenes keyframe."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from drive_vla import geometry as g


def test_quaternion_round_trip_and_yaw():
    rng = np.random.default_rng(0)
    for _ in range(20):
        q = rng.normal(size=4)
        q /= np.linalg.norm(q)
        q = q if q[0] >= 0 else -q
        np.testing.assert_allclose(g.matrix_to_quat(g.quat_to_matrix(q)), q, atol=1e-9)
    assert g.quat_to_yaw(g.yaw_to_quat(0.7)) == pytest.approx(0.7)
    np.testing.assert_allclose(g.quat_to_matrix(g.yaw_to_quat(math.pi / 2)) @ [1, 0, 0], [0, 1, 0], atol=1e-12)
    with pytest.raises(ValueError, match="quaternion"):
        g.quat_to_matrix([0, 0, 0, 0])


def test_transform_compose_and_invert():
    a = g.make_transform(g.yaw_to_quat(0.3), (1.0, 2.0, 0.5))
    b = g.pose_to_transform(-3.0, 0.5, -1.1, z=0.2)
    np.testing.assert_allclose(g.compose(a, g.invert_transform(a)), np.eye(4), atol=1e-12)
    p = np.array([[1.0, 2.0, 3.0]])
    np.testing.assert_allclose(g.transform_points(g.compose(a, b), p), g.transform_points(a, g.transform_points(b, p)))
    with pytest.raises(ValueError, match="translation"):
        g.make_transform(np.eye(3), (1, 2))


def test_global_local_poses_hand_case():
    # Ego at (10, 5) facing +y (yaw 90 deg); a point at (10, 8) is 3 m straight ahead.
    local = g.global_poses_to_local(np.array([[10.0, 8.0, math.pi / 2]]), (10.0, 5.0, math.pi / 2))
    np.testing.assert_allclose(local, [[3.0, 0.0, 0.0]], atol=1e-12)
    # A point at (9, 5) is 1 m to the ego's left.
    local = g.global_poses_to_local(np.array([[9.0, 5.0, 0.0]]), (10.0, 5.0, math.pi / 2))
    np.testing.assert_allclose(local[0, :2], [0.0, 1.0], atol=1e-12)
    rng = np.random.default_rng(1)
    poses = rng.normal(size=(10, 3))
    poses[:, 2] = g.wrap_angle(poses[:, 2])
    back = g.local_poses_to_global(g.global_poses_to_local(poses, (1, 2, 0.4)), (1, 2, 0.4))
    np.testing.assert_allclose(back, poses, atol=1e-12)


def test_ego_to_lidar_axes():
    # 1 m forward in the ego frame is +y in the LiDAR frame; 1 m left is -x.
    np.testing.assert_allclose(g.ego_xy_to_lidar_xy(np.array([[1.0, 0.0], [0.0, 1.0]])), [[0, 1], [-1, 0]])
    np.testing.assert_allclose(g.lidar_xy_to_ego_xy(g.ego_xy_to_lidar_xy(np.array([[2.0, -3.0]]))), [[2.0, -3.0]])


def test_ego_poses_to_lidar_xy_straight_and_turning():
    straight = np.array([[k * 2.0, 0.0, 0.0] for k in range(1, 7)])
    np.testing.assert_allclose(g.ego_poses_to_lidar_xy(straight), [[0.0, 2.0 * k] for k in range(1, 7)], atol=1e-9)
    # Turned 90 deg left at (5, 5): the LiDAR (0.944 m ahead of the ego origin) ends at (5, 5.944) in ego
    # coordinates, i.e. x_lidar = -5.944, y_lidar = 5 - 0.944.
    out = g.ego_poses_to_lidar_xy(np.array([[5.0, 5.0, math.pi / 2]]))
    np.testing.assert_allclose(out, [[-(5 + 0.943713), 5 - 0.943713]], atol=1e-6)


def test_carla_and_sim_handedness():
    # CARLA: y right, yaw clockwise in degrees. A car at CARLA y=+2 (right) is at canonical y=-2.
    assert g.carla_to_ego_frame(1.0, 2.0, 0.5, 90.0) == pytest.approx((1.0, -2.0, 0.5, -math.pi / 2))
    assert g.ego_frame_to_carla(*g.carla_to_ego_frame(3.0, -4.0, 1.0, 30.0)) == pytest.approx((3.0, -4.0, 1.0, 30.0))
    assert g.carla_steer_from_canonical(0.3) == -0.3
    assert g.global_to_sim(*g.sim_to_global(3.0, 4.0, 0.5)) == pytest.approx((3.0, 4.0, 0.5))


def test_camera_rotation_front_and_left():
    r = g.camera_rotation(0.0)
    np.testing.assert_allclose(r @ [0, 0, 1], [1, 0, 0], atol=1e-12)  # optical axis -> ego forward
    np.testing.assert_allclose(r @ [1, 0, 0], [0, -1, 0], atol=1e-12)  # image right -> ego right
    np.testing.assert_allclose(r @ [0, 1, 0], [0, 0, -1], atol=1e-12)  # image down -> ego down
    np.testing.assert_allclose(g.camera_rotation(math.pi / 2) @ [0, 0, 1], [0, 1, 0], atol=1e-12)


def test_rig_scaling_and_projection_centre():
    intr, extr = g.rig_calibration(256, 144)
    assert list(intr) == [m.name for m in g.NUSCENES_RIG]
    k = intr["CAM_FRONT"]
    assert k[0, 0] == pytest.approx(1266.0 * 256 / 1600, rel=1e-6) and k[0, 2] == pytest.approx(127.5, abs=1e-4)
    # A point 20 m straight ahead at camera height projects to the image centre of CAM_FRONT.
    mount = g.NUSCENES_RIG[0]
    uv, depth, valid = g.project_points(
        np.array([[mount.xyz_m[0] + 20, mount.xyz_m[1], mount.xyz_m[2]]]), extr["CAM_FRONT"], k
    )
    np.testing.assert_allclose(uv[0], [127.5, 71.5], atol=1e-3)
    assert valid[0] and depth[0] == pytest.approx(20.0, abs=1e-4)
    # The same point is behind CAM_BACK: culled.
    _, _, valid_back = g.project_points(np.array([[30.0, 0.0, 1.5]]), extr["CAM_BACK"], intr["CAM_BACK"])
    assert not valid_back[0]
    with pytest.raises(ValueError, match="image size"):
        g.scale_intrinsics(k, 0, 10)


def test_box_corners_and_footprint():
    c = g.box_corners(np.array([[0, 0, 1.0]]), np.array([[4.0, 2.0, 2.0]]), np.array([math.pi / 2]))
    assert c.shape == (1, 8, 3)
    np.testing.assert_allclose(c[0, :, 1].max(), 2.0, atol=1e-12)  # length now along y
    np.testing.assert_allclose(c[0, :, 2].min(), 0.0, atol=1e-12)
    fp = g.box_footprint((1.0, 0.0), 4.0, 2.0, 0.0)
    np.testing.assert_allclose(fp[0], [3.0, 1.0])


def _keyframe(keyframe_dir):
    return json.loads((keyframe_dir / "keyframe.json").read_text())


def test_real_keyframe_boxes_land_on_published_centres(keyframe_dir):
    kf = _keyframe(keyframe_dir)
    boxes = np.array([b["box"] for b in kf["lidar_boxes"]])
    checked, worst = 0, 0.0
    for cam, cam_boxes in kf["camera_boxes"].items():
        calib = kf["cameras"][cam]
        cam2lidar = g.invert_transform(np.array(calib["lidar2cam"]))
        uv, depth, valid = g.project_points(boxes[:, :3], cam2lidar, np.array(calib["cam2img"]))
        for b in cam_boxes:
            err = np.linalg.norm(uv[valid] - np.array(b["center_2d"]), axis=1)
            i = int(np.argmin(err))
            worst = max(worst, float(err[i]))
            assert depth[valid][i] == pytest.approx(b["depth"], abs=1e-3)
            checked += 1
    assert checked == 84
    assert worst < 1e-3


def test_real_keyframe_ego_chain_is_close_to_motion_compensated(keyframe_dir):
    """inv(cam2ego) @ lidar2ego differs from lidar2cam only by ego motion (< 0.3 m, per the fixture's README)."""
    kf = _keyframe(keyframe_dir)
    lidar2ego = np.array(kf["lidar2ego"])
    for calib in kf["cameras"].values():
        chain = g.compose(g.invert_transform(np.array(calib["cam2ego"])), lidar2ego)
        assert np.abs(chain[:3, 3] - np.array(calib["lidar2cam"])[:3, 3]).max() < 0.35
        np.testing.assert_allclose(chain[:3, :3], np.array(calib["lidar2cam"])[:3, :3], atol=0.01)


def test_nominal_rig_matches_real_calibration(keyframe_dir):
    """The built-in rig is within a few degrees and centimetres of the real nuScenes mounts."""
    kf = _keyframe(keyframe_dir)
    for mount in g.NUSCENES_RIG:
        real = np.array(kf["cameras"][mount.name]["cam2ego"])
        ours = mount.cam2ego()
        assert np.abs(real[:3, 3] - ours[:3, 3]).max() < 0.05
        cos = float(real[:3, 2] @ ours[:3, 2])
        assert math.degrees(math.acos(min(1.0, cos))) < 2.0
        real_k = np.array(kf["cameras"][mount.name]["cam2img"])
        assert abs(real_k[0, 0] - mount.focal_px) / real_k[0, 0] < 0.02


def test_real_lidar2ego_matches_nominal(keyframe_dir):
    kf = _keyframe(keyframe_dir)
    real = np.array(kf["lidar2ego"])
    np.testing.assert_allclose(real[:3, 3], g.NUSCENES_LIDAR2EGO[:3, 3], atol=0.01)
    np.testing.assert_allclose(real[:2, :2], g.NUSCENES_LIDAR2EGO[:2, :2], atol=0.03)


def test_project_boxes_culls_behind(keyframe_dir):
    kf = _keyframe(keyframe_dir)
    calib = kf["cameras"]["CAM_FRONT"]
    cam2lidar = g.invert_transform(np.array(calib["lidar2cam"]))
    boxes = np.array([b["box"] for b in kf["lidar_boxes"]])
    # mmdetection3d LiDAR boxes: size_x is length along the heading, size_y width; z at the bottom.
    xyz = boxes[:, :3] + np.stack([np.zeros(len(boxes)), np.zeros(len(boxes)), boxes[:, 5] / 2], axis=1)
    _, visible = g.project_boxes(
        xyz, boxes[:, [3, 4, 5]], boxes[:, 6], cam2lidar, np.array(calib["cam2img"]), (1600, 900)
    )
    behind = boxes[:, 1] < -5  # LiDAR y is forward: boxes well behind the car
    assert visible.sum() >= len(kf["camera_boxes"]["CAM_FRONT"]) - 2
    assert not visible[behind].any()
