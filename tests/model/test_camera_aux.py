"""The camera-space perception task: the cells and depths it draws, and that its loss trains the backbone."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from drive_vla.model.camera_aux import CameraAuxConfig, camera_targets
from drive_vla.policy import DrivingPolicy
from drive_vla.types import Batch, Boxes

H, W = 72, 128
K = np.array([[64.0, 0.0, 64.0], [0.0, 64.0, 36.0], [0.0, 0.0, 1.0]])  # 90 degree horizontal field of view


def _front_camera(height_m: float = 1.5) -> np.ndarray:
    """Camera-to-ego of a camera looking along the ego's x (OpenCV axes: x right, y down, z forward)."""
    e = np.eye(4)
    e[:3, :3] = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    e[2, 3] = height_m
    return e


def _rear_camera() -> np.ndarray:
    e = _front_camera()
    e[:3, :3] = np.diag([-1.0, -1.0, 1.0]) @ e[:3, :3]  # turned by 180 degrees about the vertical
    return e


def _boxes(*rows: tuple[float, float]) -> Boxes:
    """Cars (4.5 x 1.8 x 1.5 m, heading along x) centred at (x, y) on the ground."""
    a = np.array(rows, np.float64).reshape(-1, 2)
    xyz = np.concatenate([a, np.full((len(a), 1), 0.75)], axis=1).astype(np.float32)
    lwh = np.tile(np.array([[4.5, 1.8, 1.5]], np.float32), (len(a), 1))
    return Boxes(xyz=xyz, lwh=lwh, yaw_rad=np.zeros(len(a), np.float32))


def test_a_car_ahead_covers_the_middle_cells_of_the_front_camera_only():
    cams = np.stack([_front_camera(), _rear_camera()])
    cover, depth = camera_targets(_boxes((20.0, 0.0)), np.stack([K, K]), cams, (H, W), (9, 16), 60.0)
    cols = np.flatnonzero(cover[0].any(axis=0))
    assert cols.min() >= 6 and cols.max() <= 9  # about 5 px either side of the centre column (cells of 8 px)
    assert cover[1].sum() == 0  # behind the rear camera's back
    # the nearest corner is 20 - 2.25 m away along the optical axis
    assert np.allclose(depth[0][cover[0] > 0], 17.75, atol=1e-4)
    assert np.all(depth[cover == 0] == 0)


def test_the_nearer_box_sets_the_depth_of_a_shared_cell_and_range_drops_far_boxes():
    cams = _front_camera()[None]
    cover, depth = camera_targets(_boxes((30.0, 0.0), (10.0, 0.0)), K[None], cams, (H, W), (9, 16), 60.0)
    centre = depth[0, 4, 7:9]
    assert np.allclose(centre, 7.75, atol=1e-4)  # the car at 10 m hides the one at 30 m
    cover, _ = camera_targets(_boxes((70.0, 0.0)), K[None], cams, (H, W), (9, 16), 60.0)
    assert cover.sum() == 0
    cover, _ = camera_targets(_boxes((5.0, 40.0)), K[None], cams, (H, W), (9, 16), 60.0)
    assert cover.sum() == 0  # far to the left: outside the image
    cover, _ = camera_targets(None, K[None], cams, (H, W), (9, 16), 60.0)
    assert cover.sum() == 0


def _with_agents(samples):
    return [dataclasses.replace(s, targets=dataclasses.replace(s.targets, boxes=_boxes((12.0, 1.0)))) for s in samples]


def _front_everywhere(samples):
    """The fixture's cameras (identity extrinsics) turned into front cameras, so the boxes project."""
    out = []
    for s in samples:
        ext = {c: _front_camera().astype(np.float32) for c in s.observation.extrinsics}
        out.append(dataclasses.replace(s, observation=dataclasses.replace(s.observation, extrinsics=ext)))
    return out


def test_the_camera_loss_reaches_the_backbone_and_is_absent_without_boxes(tiny_config, samples):
    model = DrivingPolicy.build(tiny_config("camera_aux.enabled=true")).model.train()
    assert "cam_aux" not in model.losses(Batch.from_samples(samples))  # no boxes: no term, no error
    batch = Batch.from_samples(_front_everywhere(_with_agents(samples)))
    losses = model.losses(batch)
    assert torch.isfinite(losses["cam_aux"])
    losses["cam_aux"].backward()
    for part in ("vision", "camera_head"):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in getattr(model, part).parameters()), part
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.vision.backbone.parameters())
    plain = DrivingPolicy.build(tiny_config()).model
    assert plain.camera_head is None and "cam_aux" not in plain.losses(batch)


def test_the_head_learns_where_the_car_is(tiny_config, samples, fit_one_loss):
    torch.manual_seed(0)
    model = DrivingPolicy.build(tiny_config("camera_aux.enabled=true")).model.train()
    batch = Batch.from_samples(_front_everywhere(_with_agents(samples)))
    first, last = fit_one_loss(model, batch, "cam_aux", 40)
    assert last < 0.3 * first


@pytest.mark.parametrize(("field", "value"), [("range_m", 0.0), ("depth_weight", -1.0)])
def test_bad_config_names_the_field(field, value):
    with pytest.raises(ValueError, match=f"camera_aux.{field}"):
        CameraAuxConfig(**{field: value})
