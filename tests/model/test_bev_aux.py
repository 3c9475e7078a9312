"""The auxiliary occupancy task: the grid it draws, its mask, and that its loss trains the shared parts."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from drive_vla.model.bev_aux import BEVAuxConfig, occupancy_targets, rasterize
from drive_vla.policy import DrivingPolicy
from drive_vla.types import Batch, Boxes, Sample


def _boxes(*rows: tuple[float, float, float, float, float]) -> Boxes:
    """Boxes from (x, y, length, width, yaw) rows."""
    a = np.array(rows, np.float32).reshape(-1, 5)
    xyz = np.concatenate([a[:, :2], np.zeros((len(a), 1), np.float32)], axis=1)
    lwh = np.concatenate([a[:, 2:4], np.full((len(a), 1), 1.5, np.float32)], axis=1)
    return Boxes(xyz=xyz, lwh=lwh, yaw_rad=a[:, 4], category=("vehicle.car",) * len(a), instance=("i",) * len(a))


def test_a_car_ahead_fills_the_cells_under_it():
    cfg = BEVAuxConfig(x_range_m=(-8, 56), y_range_m=(-24, 24), cell_m=4.0)
    assert cfg.shape == (3, 16, 12)
    grid = rasterize(_boxes((10.0, 1.0, 4.4, 1.8, 0.0)), cfg)
    # x 7.8..12.2 m -> rows 3..5 (row r covers -8 + 4r .. -8 + 4(r+1)); y 0.1..1.9 m -> column 6 only
    assert {tuple(rc) for rc in np.argwhere(grid)} == {(3, 6), (4, 6), (5, 6)}


def test_turning_a_box_turns_its_footprint():
    cfg = BEVAuxConfig(x_range_m=(0, 20), y_range_m=(-10, 10), cell_m=1.0)
    along = rasterize(_boxes((10.0, 0.0, 8.0, 1.0, 0.0)), cfg)
    across = rasterize(_boxes((10.0, 0.0, 8.0, 1.0, np.pi / 2)), cfg)
    assert np.ptp(np.argwhere(along)[:, 0]) >= 7 and np.ptp(np.argwhere(along)[:, 1]) <= 1
    assert np.ptp(np.argwhere(across)[:, 1]) >= 7 and np.ptp(np.argwhere(across)[:, 0]) <= 1


@settings(max_examples=60, deadline=None)
@given(
    x=st.floats(-200, 200),
    y=st.floats(-200, 200),
    yaw=st.floats(-np.pi, np.pi),
    length=st.floats(0.1, 20),
)
def test_boxes_outside_the_grid_draw_nothing_and_inside_always_draw(x, y, yaw, length):
    cfg = BEVAuxConfig()
    grid = rasterize(_boxes((x, y, length, 2.0, yaw)), cfg)
    reach = np.hypot(length, 2.0) / 2
    (x0, x1), (y0, y1) = cfg.x_range_m, cfg.y_range_m
    if x + reach < x0 or x - reach >= x1 or y + reach < y0 or y - reach >= y1:
        assert grid.sum() == 0
    if x0 <= x < x1 and y0 <= y < y1:  # the centre is one of the drawn points
        assert grid.sum() >= 1


def test_targets_mask_missing_current_boxes_and_steps_past_the_scene(samples):
    cfg = BEVAuxConfig(steps=(0, 2, 6))
    ahead = _boxes((12.0, 0.0, 4.5, 1.8, 0.0))
    s0 = samples[0]
    mask = np.array([True, True, True, True, False, False])
    traj = dataclasses.replace(s0.targets.trajectory, mask=mask)
    with_boxes = dataclasses.replace(
        s0,
        targets=dataclasses.replace(s0.targets, trajectory=traj, boxes=ahead, future_boxes=(ahead,) * 6),
    )
    grids, valid = occupancy_targets([with_boxes, s0], cfg)
    assert grids.shape == (2, 3, *cfg.shape[1:])
    assert valid.tolist() == [[True, True, False], [False, False, False]]
    assert grids[0, 0].sum() > 0 and np.array_equal(grids[0, 0], grids[0, 1])


def _with_agents(samples: list[Sample]) -> list[Sample]:
    out = []
    for k, s in enumerate(samples):
        boxes = _boxes((8.0 + 6 * k, 0.0, 4.5, 1.8, 0.0))
        out.append(
            dataclasses.replace(s, targets=dataclasses.replace(s.targets, boxes=boxes, future_boxes=(boxes,) * 6))
        )
    return out


def test_the_occupancy_loss_reaches_vision_and_lm_and_is_absent_without_boxes(tiny_config, samples):
    model = DrivingPolicy.build(tiny_config("bev_aux.enabled=true")).model.train()
    assert "bev_bce" not in model.losses(Batch.from_samples(samples))  # no boxes: no term, no error
    losses = model.losses(Batch.from_samples(_with_agents(samples)))
    assert torch.isfinite(losses["bev_bce"])
    losses["bev_bce"].backward()
    for part in ("vision", "lm", "bev_head"):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in getattr(model, part).parameters()), part
    plain = DrivingPolicy.build(tiny_config()).model
    assert plain.bev_head is None and "bev_bce" not in plain.losses(Batch.from_samples(_with_agents(samples)))


def test_the_head_learns_where_the_agents_are(tiny_config, samples, fit_one_loss):
    torch.manual_seed(0)
    model = DrivingPolicy.build(tiny_config("bev_aux.enabled=true")).model.train()
    batch = Batch.from_samples(_with_agents(samples))
    first, last = fit_one_loss(model, batch, "bev_bce", 60)
    assert last < 0.3 * first


@pytest.mark.parametrize(
    ("field", "value"), [("x_range_m", (5.0, 5.0)), ("cell_m", 0.0), ("steps", ()), ("steps", (-1,))]
)
def test_bad_config_names_the_field(field, value):
    with pytest.raises(ValueError, match=f"bev_aux.{field}"):
        BEVAuxConfig(**{field: value})
