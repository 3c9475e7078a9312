"""ST-P3's raster warp: future frames drawn in their own ego frame and resampled into the present."""

from __future__ import annotations

import math

import numpy as np
import pytest

from drive_vla.eval.occupancy import rasterise, warp_raster
from drive_vla.eval.openloop_protocols import SampleAgents
from drive_vla.eval.stp3_warp import stp3_warps


def _pose(x: float, y: float, yaw: float) -> np.ndarray:
    m = np.eye(4)
    m[:2, :2] = [[math.cos(yaw), -math.sin(yaw)], [math.sin(yaw), math.cos(yaw)]]
    m[:2, 3] = [x, y]
    return m


def test_the_identity_warp_keeps_the_raster():
    grid = (np.random.default_rng(0).random((200, 200)) > 0.9).astype(np.uint8)
    identity = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], np.float32)
    assert np.array_equal(warp_raster(grid, identity), grid)
    assert np.allclose(stp3_warps(_pose(3, 4, 0.3), np.stack([_pose(3, 4, 0.3)] * 6)), identity, atol=1e-6)


@pytest.mark.parametrize("yaw", [0.0, math.pi / 2])
def test_a_standing_car_seen_from_a_moving_ego_lands_where_the_present_frame_sees_it(yaw):
    """The ego drives 2 m (4 cells) forward per keyframe: each future frame sees a parked car 2 m nearer, and
    the warp puts it back in the present frame's cells exactly (whole-cell shifts, no rotation)."""
    present = _pose(100.0, -20.0, yaw)
    heading = np.array([math.cos(yaw), math.sin(yaw)])
    future = np.stack([_pose(*(present[:2, 3] + 2.0 * k * heading), yaw) for k in range(1, 7)])
    car_xy = present[:2, 3] + 15.0 * heading + 3.0 * np.array([-heading[1], heading[0]])  # 15 m ahead, 3 m left
    steps = np.arange(1, 7)
    agents = SampleAgents(
        step=steps,
        xyz=np.tile([*car_xy, 0.8], (6, 1)),
        heading=np.tile([*heading, 0.0], (6, 1)),
        wlh=np.tile([1.9, 4.5, 1.6], (6, 1)),
        category=("vehicle.car",) * 6,
        instance=("car",) * 6,
        visibility=np.full(6, 4),
        ego2global=present,
        lidar2ego=np.eye(4),
        past_known=False,
    )
    in_present = agents.stp3_boxes(0)
    own = SampleAgents(**{**agents.__dict__, "future_ego2global": future})
    in_own, warps = own.stp3_boxes(0), own.stp3_warps()
    assert np.isnan(agents.stp3_warps()).all()  # without future poses nothing is warped
    for k in range(6):
        sel = in_own.step == k
        assert in_own.xy[sel][0][1] == pytest.approx(15.0 - 2.0 * (k + 1))  # rows = ego x: nearer each step
        assert np.array_equal(
            warp_raster(rasterise(in_own, sel), warps[k]), rasterise(in_present, in_present.step == k)
        )
    # The collision check reads the warped rasters: a plan that swerves into the car hits it either way.
    from drive_vla.eval.occupancy import STP3_GRID, occupancy_collisions

    plan = np.zeros((1, 6, 2))  # LiDAR frame x right, y forward; into the car's lane, then along it
    plan[0, :, 0] = [-0.5, -1.5, -2.5, -3.0, -3.0, -3.0]
    plan[0, :, 1] = [3.0, 6.0, 9.0, 11.0, 12.0, 13.0]
    a = occupancy_collisions([plan], in_present, None, STP3_GRID)
    b = occupancy_collisions([plan], in_own, None, STP3_GRID, warps[None])
    assert a.any() and np.array_equal(a, b)
