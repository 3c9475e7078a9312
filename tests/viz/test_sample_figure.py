"""The per-sample figure: layout, projected trajectories where geometry says, depth culling, boxes, PNG file."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from drive_vla import geometry
from drive_vla.types import Boxes, Control, Plan, Sample, SampleMeta, Targets, Trajectory
from drive_vla.viz.draw import BOX_RGB, GT_RGB, PRED_RGB
from drive_vla.viz.sample_figure import CAMERA_LAYOUT, render_sample, render_sample_figure, save_sample_figure

T = np.arange(1, 7, dtype=np.float32) * 0.5


def _straight(speed: float = 5.0, lateral: float = 0.0) -> Trajectory:
    return Trajectory(np.stack([speed * T, np.full(6, lateral, dtype=np.float32)], axis=1))


def _has_colour(img: np.ndarray, x: float, y: float, rgb, radius: int = 3) -> bool:
    xi, yi = int(round(x)), int(round(y))
    win = img[max(0, yi - radius) : yi + radius + 1, max(0, xi - radius) : xi + radius + 1]
    return bool((win == np.array(rgb, dtype=np.uint8)).all(axis=-1).any())


def _count(img: np.ndarray, rect, rgb) -> int:
    x0, y0, x1, y1 = rect
    return int((img[y0:y1, x0:x1] == np.array(rgb, dtype=np.uint8)).all(axis=-1).sum())


def test_png_written_with_expected_layout(tmp_path, grey_obs):
    plan = Plan(
        _straight(),
        Control(0.0, 0.3, 0.0),
        text="Keeping the lane; the road is clear.",
        meta_action="keep speed, straight",
    )
    fig = render_sample_figure(grey_obs, plan, gt=_straight(4.5, -0.5), tile_width=400)
    out = fig.save(tmp_path / "sub" / "sample.png")
    img = cv2.imread(str(out), cv2.IMREAD_COLOR)
    assert img is not None and img.shape == fig.image.shape
    assert img.shape[1] == 3 * 400 + 2 * 225  # three 400x225 tiles + a square BEV as tall as two rows
    assert img.shape[0] > 2 * 225
    assert np.array_equal(cv2.cvtColor(img, cv2.COLOR_BGR2RGB), fig.image)
    # nuScenes 2x3 layout
    assert fig.panels["CAM_FRONT_LEFT"][:2] == (0, 0) and fig.panels["CAM_FRONT"][:2] == (400, 0)
    assert fig.panels["CAM_BACK_RIGHT"][:2] == (800, 225) and fig.panels["bev"] == (1200, 0, 1650, 450)
    assert [c for row in CAMERA_LAYOUT for c in row] == [
        "CAM_FRONT_LEFT", "CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_BACK_LEFT", "CAM_BACK", "CAM_BACK_RIGHT"
    ]  # fmt: skip


def test_predicted_path_drawn_where_projection_says_and_culled_behind(grey_obs):
    fig = render_sample_figure(grey_obs, _straight(), tile_width=400)
    uv, _, valid = geometry.project_points(
        np.c_[_straight().xy, np.zeros(6)], grey_obs.extrinsics["CAM_FRONT"], grey_obs.intrinsics["CAM_FRONT"]
    )
    h, w = grey_obs.image_hw
    inside = valid & (uv[:, 0] >= 0) & (uv[:, 0] < w) & (uv[:, 1] >= 0) & (uv[:, 1] < h)
    assert inside.sum() >= 3  # the far waypoints are on the road ahead in the image
    for p in fig.camera_to_figure("CAM_FRONT", uv[inside]):
        assert _has_colour(fig.image, *p, PRED_RGB)
    assert fig.drawn["CAM_FRONT"] == int(inside.sum())
    # The road ahead is behind the back cameras: depth culling leaves them clean.
    for cam in ("CAM_BACK", "CAM_BACK_LEFT", "CAM_BACK_RIGHT"):
        assert _count(fig.image, fig.panels[cam], PRED_RGB) == 0 and fig.drawn[cam] == 0
    # BEV: the last waypoint lands where the panel's mapping puts it.
    assert _has_colour(fig.image, *fig.bev.to_px(_straight().xy[-1:])[0], PRED_RGB)


def test_left_turn_reaches_the_front_left_camera(grey_obs):
    turn = Trajectory(
        np.array([[1.5, 0.2], [2.8, 0.8], [3.8, 1.8], [4.4, 3.2], [4.7, 4.8], [4.8, 6.5]], dtype=np.float32)
    )
    fig = render_sample_figure(grey_obs, turn)
    assert fig.drawn["CAM_FRONT_LEFT"] >= 1
    assert fig.drawn["CAM_FRONT_RIGHT"] == 0 and _count(fig.image, fig.panels["CAM_FRONT_RIGHT"], PRED_RGB) == 0


def test_ground_truth_and_boxes_are_drawn(grey_obs):
    boxes = Boxes(
        xyz=np.array([[15.0, 0.0, 0.8], [-12.0, 0.0, 0.8]], dtype=np.float32),
        lwh=np.array([[4.5, 1.9, 1.6], [4.5, 1.9, 1.6]], dtype=np.float32),
        yaw_rad=np.zeros(2, dtype=np.float32),
    )
    gt = Trajectory(_straight(4.0).xy, mask=np.array([True] * 4 + [False] * 2))
    fig = render_sample_figure(grey_obs, None, gt=gt, boxes=boxes)
    assert _count(fig.image, fig.panels["CAM_FRONT"], GT_RGB) > 0
    assert _count(fig.image, fig.panels["CAM_FRONT"], PRED_RGB) == 0
    assert _count(fig.image, fig.panels["CAM_FRONT"], BOX_RGB) > 0  # the car ahead
    assert _count(fig.image, fig.panels["CAM_BACK"], BOX_RGB) > 0  # the car behind
    assert _count(fig.image, fig.panels["bev"], BOX_RGB) > 0
    # masked ground-truth points are not drawn in the BEV
    assert not _has_colour(fig.image, *fig.bev.to_px(_straight(4.0).xy[-1:])[0], GT_RGB, radius=1)


def test_render_sample_uses_targets_and_text(make_grey_obs):
    obs = make_grey_obs()
    empty = Boxes.empty()
    targets = Targets(_straight(4.0), explanation="x", future_boxes=tuple(empty for _ in range(6)))
    sample = Sample(obs, targets, SampleMeta(token="abc123", scene="scene-0001"))
    fig = render_sample(sample, Plan(_straight(), text="A long explanation " * 30), tile_width=200)
    assert fig.image.shape[1] == 3 * 200 + 2 * 112  # 200 * 36 / 64 = 112.5 rounds to 112
    assert _count(fig.image, fig.panels["CAM_FRONT"], GT_RGB) > 0
    text_rows = fig.panels["text"][3] - fig.panels["text"][1]
    assert text_rows > 5 * 20  # the long explanation wraps over several lines


def test_save_and_argument_errors(tmp_path, grey_obs):
    path = save_sample_figure(tmp_path / "f.png", grey_obs, _straight())
    assert path.stat().st_size > 1000
    with pytest.raises(ValueError, match="tile_width"):
        render_sample_figure(grey_obs, tile_width=10)


def test_real_keyframe_calibration(keyframe_dir):
    """On the real 1600x900 nuScenes keyframe, the path lands in CAM_FRONT where its calibration projects it."""
    from drive_vla.types import CAMERA_NAMES, EgoState, Observation

    meta = json.loads((keyframe_dir / "keyframe.json").read_text())
    images = {
        c: cv2.cvtColor(cv2.imread(str(keyframe_dir / meta["cameras"][c]["image"])), cv2.COLOR_BGR2RGB)
        for c in CAMERA_NAMES
    }
    intr = {c: np.array(meta["cameras"][c]["cam2img"], dtype=np.float32) for c in CAMERA_NAMES}
    extr = {c: np.array(meta["cameras"][c]["cam2ego"], dtype=np.float32) for c in CAMERA_NAMES}
    obs = Observation(images, intr, extr, EgoState(speed_mps=4.0))
    fig = render_sample_figure(obs, _straight(4.0), tile_width=320)
    assert fig.image.shape[1] == 3 * 320 + 2 * 180
    uv, _, valid = geometry.project_points(np.c_[_straight(4.0).xy, np.zeros(6)], extr["CAM_FRONT"], intr["CAM_FRONT"])
    assert valid[-1] and 0 <= uv[-1, 0] < 1600 and 0 <= uv[-1, 1] < 900
    assert _has_colour(fig.image, *fig.camera_to_figure("CAM_FRONT", uv[-1:])[0], PRED_RGB)
