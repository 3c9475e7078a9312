"""Camera renderer: agreement with geometry.project_boxes, near-plane clipping, image contents."""

from __future__ import annotations

import numpy as np
import pytest

from drive_vla.geometry import global_poses_to_local, project_boxes, project_points, rig_calibration
from drive_vla.sim.config import CameraConfig
from drive_vla.sim.embedded import EmbeddedWorld
from drive_vla.sim.render import CameraRenderer, clip_polygon_near, static_scene_for
from drive_vla.sim.scenarios import make_scenario
from drive_vla.sim.world import Agent
from drive_vla.types import CAMERA_NAMES

W, H = 160, 90
EGO = (300.0, 0.0, 0.0)  # on lane 0 of the straight highway network, facing +x


@pytest.fixture(scope="module")
def highway_scene():
    world = EmbeddedWorld()
    world.reset("highway", 0)
    return static_scene_for(world.road.network, CameraConfig())


def _agent(x, y, yaw=0.0, lwh=(4.6, 1.9, 1.6), color=(210, 40, 40), vid="a"):
    """An agent placed in the ego frame of EGO (which is aligned with the global axes)."""
    return Agent(
        vid, "vehicle.car", np.array([EGO[0] + x, EGO[1] + y, lwh[2] / 2]), np.array(lwh), yaw, np.zeros(2), color
    )


def _iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.mark.parametrize(
    "cam, x, y, yaw",
    [
        ("CAM_FRONT", 14.0, 0.5, 0.3),
        ("CAM_FRONT_LEFT", 9.0, 9.0, 1.2),
        ("CAM_BACK", -12.0, -1.0, -0.2),
        ("CAM_BACK_RIGHT", -5.0, -8.0, 0.0),
    ],
)
def test_projected_gt_box_lands_on_the_rendered_vehicle(highway_scene, cam, x, y, yaw):
    agent = _agent(x, y, yaw)
    images, masks = CameraRenderer().render(highway_scene, EGO, [agent], W, H, cameras=[cam], instance_masks=True)
    intr, extr = rig_calibration(W, H)
    local = global_poses_to_local(np.array([[*agent.xyz[:2], agent.yaw_rad]]), EGO)
    xyz = np.array([[local[0, 0], local[0, 1], agent.xyz[2]]])
    uv, visible = project_boxes(xyz, agent.lwh[None], local[:, 2], extr[cam], intr[cam], (W, H))
    assert visible[0]
    box = [
        max(uv[0, :, 0].min(), 0),
        max(uv[0, :, 1].min(), 0),
        min(uv[0, :, 0].max(), W - 1),
        min(uv[0, :, 1].max(), H - 1),
    ]
    ys, xs = np.nonzero(masks[cam] == 1)
    blob = [xs.min(), ys.min(), xs.max(), ys.max()]
    assert _iou(box, blob) > 0.7
    centre, _, ok = project_points(xyz, extr[cam], intr[cam])
    u, v = np.round(centre[0]).astype(int)
    assert ok[0] and masks[cam][v, u] == 1
    base = np.array(agent.color_rgb, dtype=float)

    def shade_of_base(px):  # the faces are the base colour times a brightness factor
        px = px.astype(float)
        return px @ base / (np.linalg.norm(px, axis=-1) * np.linalg.norm(base) + 1e-9) > 0.995

    assert shade_of_base(images[cam][v, u]) and shade_of_base(images[cam][ys, xs]).all()


def test_vehicle_straddling_the_camera_plane_is_clipped_not_flipped(highway_scene):
    # CAM_FRONT sits 1.70 m ahead of the ego origin; this car spans x in [-0.8, 4.2] m beside it, on the left.
    agent = _agent(1.7, 2.4, 0.0, lwh=(5.0, 2.0, 1.6))
    renderer = CameraRenderer()
    images, masks = renderer.render(highway_scene, EGO, [agent], W, H, instance_masks=True)
    front = masks["CAM_FRONT"] == 1
    assert front.any() and front[:, : W // 2].any()
    assert not front[:, W // 2 + 1 :].any()  # nothing wraps around to the right half
    assert front[:, 0].any()  # it runs off the left edge of the image, where it leaves the view
    assert (masks["CAM_FRONT_LEFT"] == 1).any() and not (masks["CAM_FRONT_RIGHT"] == 1).any()
    assert all(np.isfinite(images[c]).all() for c in CAMERA_NAMES)


def test_clip_polygon_near_keeps_the_part_in_front():
    near = 0.5
    square = np.array([[-1.0, 0.0, -1.0], [1.0, 0.0, -1.0], [1.0, 0.0, 3.0], [-1.0, 0.0, 3.0]])  # x-z plane
    clipped = clip_polygon_near(square, near)
    assert clipped[:, 2].min() >= near - 1e-12
    x, z = clipped[:, 0], clipped[:, 2]
    area = 0.5 * abs(np.dot(x, np.roll(z, -1)) - np.dot(z, np.roll(x, -1)))
    assert area == pytest.approx(2.0 * (3.0 - near))
    assert len(clip_polygon_near(square - [0, 0, 10.0], near)) == 0


def test_six_cameras_show_sky_road_and_ground(highway_scene):
    images, masks = CameraRenderer().render(highway_scene, EGO, [], W, H)
    assert masks is None and set(images) == set(CAMERA_NAMES)
    front = images["CAM_FRONT"]
    assert front.shape == (H, W, 3) and front.dtype == np.uint8
    sky, road = front[2, W // 2].astype(int), front[H - 3, W // 2].astype(int)
    assert sky[2] > sky[0] + 40  # blue above the horizon
    assert abs(road[0] - road[2]) < 15 and road.mean() < 120  # grey asphalt under the car
    assert not np.array_equal(images["CAM_FRONT"], images["CAM_BACK_LEFT"])


def test_world_render_uses_the_rig_at_any_size():
    world = EmbeddedWorld()
    world.reset(make_scenario("roundabout").name, 1)
    small = world.render(32, 18)
    assert all(img.shape == (18, 32, 3) for img in small.values())
