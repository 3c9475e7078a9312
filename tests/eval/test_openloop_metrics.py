"""Hand-worked checks of the open-loop metrics (LiDAR frame: x right, y forward)."""

from __future__ import annotations

import numpy as np
import pytest

from drive_vla.eval.occupancy import (
    UNIAD_GRID,
    AgentBoxes,
    ego_footprint_cells,
    footprint_cells,
    occupancy_collisions,
    rasterise,
)
from drive_vla.eval.openloop_metrics import STP3, UNIAD, aggregate, openloop_metrics

FORWARD = np.pi / 2  # heading along LiDAR +y


def straight(speed_mps: float, x_m: float = 0.0) -> np.ndarray:
    """(6, 2) waypoints driving forward at a constant speed."""
    return np.stack([np.full(6, x_m), speed_mps * 0.5 * np.arange(1, 7)], axis=1)


def static_box(sample: int, xy, length: float, width: float, category: str, steps=range(6)) -> AgentBoxes:
    steps = list(steps)
    return AgentBoxes.from_lists(
        [sample] * len(steps), steps, [xy] * len(steps), [length] * len(steps), [width] * len(steps),
        [FORWARD] * len(steps), [category] * len(steps),
    )  # fmt: skip


def test_ego_footprint_has_32_cells_like_stp3():
    rows, cols = ego_footprint_cells()
    assert len(rows) == 32
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (97, 104, 98, 101)


def test_footprint_is_axis_aligned_and_translated_by_cells():
    rows, cols = footprint_cells(np.array([[0.0, 5.0], [-1.5, 0.0]]))
    assert rows.shape == (2, 32)
    assert (rows[0].min(), rows[0].max()) == (107, 114)  # 5 m forward = 10 cells
    assert (cols[1].min(), cols[1].max()) == (101, 104)  # 1.5 m left (x = -1.5) = 3 cells


def test_box_rasterisation_rounds_corners_like_fiery():
    # car 4.5 x 1.8 centred 10.1 m ahead: forward [7.85, 12.35] -> rows 116..125, left [-0.9, 0.9] -> cols 98..102
    grid = rasterise(static_box(0, (0.0, 10.1), 4.5, 1.8, "vehicle.car", steps=[0]))
    r, c = np.nonzero(grid)
    assert (r.min(), r.max(), c.min(), c.max()) == (116, 125, 98, 102)
    assert grid.sum() == 10 * 5


def parked_car_case():
    pred = straight(5.0)[None]  # 2.5 m per step
    gt = np.stack([np.zeros(6), [1, 2, 3, 4, 5, 5.5]], axis=1)[None]  # brakes behind the car
    boxes = static_box(0, (0.0, 10.1), 4.5, 1.8, "vehicle.car")
    return pred, gt, np.ones((1, 6), bool), boxes


def test_straight_line_hits_parked_car_at_steps_3_to_5():
    pred, gt, mask, boxes = parked_car_case()
    hits = occupancy_collisions([pred, gt], boxes, ["vehicle"])
    assert hits[0, 0, 0].tolist() == [False, False, True, True, True, False]
    assert not hits[1].any()
    m = openloop_metrics(pred, gt, mask, boxes)
    # ST-P3: mean over steps 1..2N; its raster is the ego frame (nominal mount: the car at ego x 8.79..13.29,
    # rows 118..127) while the plan is looked up at its LiDAR y, so the footprint reaches the car at steps 3..6
    assert m["stp3"]["collision_pct"] == pytest.approx({"1s": 0.0, "2s": 50.0, "3s": 200 / 3, "avg": 350 / 9})
    # UniAD: the value at step 2N alone
    assert m["uniad"]["collision_pct"] == pytest.approx({"1s": 0.0, "2s": 100.0, "3s": 0.0, "avg": 100 / 3})
    # per-step L2 = 1.5, 3, 4.5, 6, 7.5, 9.5
    assert m["stp3"]["l2_m"] == pytest.approx({"1s": 2.25, "2s": 3.75, "3s": 32 / 6, "avg": (2.25 + 3.75 + 32 / 6) / 3})
    assert m["uniad"]["l2_m"] == pytest.approx({"1s": 3.0, "2s": 6.0, "3s": 9.5, "avg": 18.5 / 3})
    assert m["stp3"]["num_samples"] == m["uniad"]["num_samples"] == 1


def test_swerve_into_neighbour_collides_once_lanes_overlap():
    fwd = 2.5 * np.arange(1, 7)
    pred = np.stack([[0.0, -0.5, -1.5, -2.5, -3.5, -3.5], fwd], axis=1)[None]  # swerves left (x < 0)
    gt = straight(5.0)[None]
    # neighbour 3.5 m to the left driving alongside, centre 0.6 m ahead of the LiDAR
    boxes = AgentBoxes.from_lists([0] * 6, range(6), [(-3.5, f + 0.6) for f in fwd], [4.5] * 6, [1.8] * 6,
                                  [FORWARD] * 6, ["vehicle.car"] * 6)  # fmt: skip
    hits = occupancy_collisions([pred, gt], boxes, ["vehicle"], layout=UNIAD_GRID)  # UniAD draws in LiDAR x, y
    # at x = -1.5 UniAD's footprint reads cols int(98..101 - 3) = 95..98 and the neighbour fills 91..95
    assert hits[0, 0, 0].tolist() == [False, False, True, True, True, True]
    assert not hits[1].any()
    m = openloop_metrics(pred, gt, np.ones((1, 6), bool), boxes)
    assert m["uniad"]["collision_pct"]["3s"] == pytest.approx(100.0)
    assert m["uniad"]["collision_pct"]["2s"] == pytest.approx(100.0)
    # the rotated box check agrees here (headings follow the swerve)
    assert m["box_overlap"]["collision_pct"]["3s"] > 0


def test_gt_collision_steps_are_excluded_from_the_numerator():
    pred = straight(5.0)[None]  # forward 2.5, 5, 7.5, 10, ...
    gt = straight(4.0)[None]  # forward 2, 4, 6, 8, ...
    boxes = AgentBoxes.concatenate(
        [
            static_box(0, (0.0, 8.0), 8.0, 1.8, "vehicle.car", steps=[2]),  # covers pred (7.5) and GT (6)
            static_box(0, (0.0, 12.5), 3.0, 1.8, "vehicle.car", steps=[3]),  # covers pred (10) only
        ]
    )
    hits = occupancy_collisions([pred, gt], boxes, ["vehicle"])
    assert hits[0, 0, 0].tolist() == [False, False, True, True, False, False]
    assert hits[1, 0, 0].tolist() == [False, False, True, False, False, False]
    m = openloop_metrics(pred, gt, np.ones((1, 6), bool), boxes)
    assert m["odv_stp3"]["collision_pct"]["2s"] == pytest.approx(25.0)  # step 4 counted, step 3 excluded
    assert m["odv_stp3"]["collision_pct"]["3s"] == pytest.approx(100 / 6)
    assert m["odv_stp3"]["gt_collision_steps_excluded"] == 1
    assert m["uniad"]["collision_pct"]["2s"] == pytest.approx(100.0)


def test_masked_steps_uniad_keeps_sample_in_denominator_stp3_drops_it():
    pred = np.stack([straight(5.0), straight(5.0)])
    gt = np.stack([straight(4.0), straight(4.0)])
    gt[1, 4:] = np.nan  # sample 1 ends after 2 s
    mask = np.ones((2, 6), bool)
    mask[1, 4:] = False
    m = openloop_metrics(pred, gt, mask, AgentBoxes.empty())
    # per-step L2 = 0.5 k; sample 1 has no value at steps 5, 6
    assert m["stp3"]["num_samples"] == 1
    assert m["stp3"]["num_samples_outside_sample_set"] == 1
    assert m["stp3"]["l2_m"]["3s"] == pytest.approx(np.mean(0.5 * np.arange(1, 7)))
    assert m["uniad"]["num_samples"] == 2
    assert m["uniad"]["l2_m"]["2s"] == pytest.approx(2.0)  # both samples valid at step 4
    assert m["uniad"]["l2_m"]["3s"] == pytest.approx((3.0 + 0.0) / 2)  # masked step adds 0, still / 2
    assert m["uniad"]["valid_samples_at_step"] == {"1s": 2, "2s": 2, "3s": 1}


def test_pedestrians_count_for_stp3_only():
    pred = straight(5.0)[None]
    gt = np.stack([np.zeros(6), np.linspace(0.1, 0.6, 6)], axis=1)[None]  # creeps, stays clear
    boxes = static_box(0, (0.0, 10.0), 0.8, 0.8, "human.pedestrian.adult")
    m = openloop_metrics(pred, gt, np.ones((1, 6), bool), boxes)
    assert m["stp3"]["collision_pct"]["3s"] > 0
    assert m["uniad"]["collision_pct"] == {"1s": 0.0, "2s": 0.0, "3s": 0.0, "avg": 0.0}
    assert m["box_overlap"]["collision_pct"]["3s"] > 0


def test_other_categories_never_count():
    pred, gt, mask, _ = parked_car_case()
    boxes = static_box(0, (0.0, 10.1), 4.5, 1.8, "movable_object.barrier")
    m = openloop_metrics(pred, gt, mask, boxes)
    assert m["stp3"]["collision_pct"]["avg"] == 0.0


def test_uniad_value_at_3s_exceeds_stp3_average_when_errors_grow():
    rng = np.random.default_rng(0)
    gt = np.stack([straight(v) for v in rng.uniform(2, 12, 50)])
    pred = gt + rng.normal(0, 1, gt.shape) * (0.2 * np.arange(1, 7))[None, :, None]  # error grows with time
    m = openloop_metrics(pred, gt, np.ones((50, 6), bool), AgentBoxes.empty(), box_overlap=False)
    assert m["uniad"]["l2_m"]["3s"] > m["stp3"]["l2_m"]["3s"]
    assert m["uniad"]["l2_m"]["1s"] > m["stp3"]["l2_m"]["1s"]


def test_aggregate_rejects_bad_shapes_and_reports_empty_protocol():
    with pytest.raises(ValueError, match="expected \\(N, 6\\)"):
        aggregate(np.zeros((2, 5)), np.zeros((2, 5)), np.ones((2, 5), bool), STP3)
    out = aggregate(np.zeros((1, 6)), np.zeros((1, 6)), np.zeros((1, 6), bool), STP3)
    assert out["num_samples"] == 0 and out["l2_m"]["3s"] is None
    assert aggregate(np.ones((1, 6)), np.zeros((1, 6)), np.zeros((1, 6), bool), UNIAD)["l2_m"]["3s"] == 0.0


def test_openloop_metrics_input_errors_name_the_field():
    z = np.zeros((1, 6, 2))
    with pytest.raises(ValueError, match="pred_xy"):
        openloop_metrics(np.zeros((1, 5, 2)), z, np.ones((1, 6), bool), AgentBoxes.empty())
    with pytest.raises(ValueError, match="pred_xy.*NaN"):
        openloop_metrics(np.full((1, 6, 2), np.nan), z, np.ones((1, 6), bool), AgentBoxes.empty())
    with pytest.raises(ValueError, match="gt_mask"):
        openloop_metrics(z, z, np.ones((1, 6)), AgentBoxes.empty())
    with pytest.raises(ValueError, match="protocol"):
        openloop_metrics(z, z, np.ones((1, 6), bool), AgentBoxes.empty(), protocols="vad")
    with pytest.raises(ValueError, match="boxes.sample"):
        openloop_metrics(z, z, np.ones((1, 6), bool), static_box(3, (0, 5), 4, 2, "vehicle.car"))


def test_culled_rasterisation_matches_brute_force_grids():
    from drive_vla.eval.bench import synthetic_inputs
    from drive_vla.eval.occupancy import GROUP_CODE

    pred, gt, _, boxes = synthetic_inputs(40, 25, seed=3)
    fast = occupancy_collisions([pred, gt], boxes, ["vehicle", "pedestrian"])
    assert fast.any() and not fast.all()
    for q, traj in enumerate([pred, gt]):
        rows, cols = footprint_cells(traj)
        for g, name in enumerate(["vehicle", "pedestrian"]):
            for n in range(40):
                for t in range(6):
                    grid = rasterise(boxes, (boxes.sample == n) & (boxes.step == t) & (boxes.group == GROUP_CODE[name]))
                    assert fast[q, g, n, t] == grid[rows[n, t], cols[n, t]].any()


def test_box_overlap_rotates_the_ego_with_its_heading():
    from drive_vla.eval.box_collision import box_collisions

    # a box 1.8 m to the right of the LiDAR origin, 2 m ahead: the axis-aligned ego (0.925 m half width)
    # misses it; rotated 45 degrees to the right, its front corner sweeps into it
    boxes = static_box(0, (1.8, 2.0), 1.0, 1.0, "vehicle.car", steps=[0])
    xy = np.zeros((1, 6, 2))
    straight_yaw = np.full((1, 6), FORWARD)
    assert not box_collisions(xy, straight_yaw, boxes)[0, 0]
    assert box_collisions(xy, straight_yaw - np.pi / 4, boxes)[0, 0]
    assert not occupancy_collisions([xy], boxes, ["vehicle"]).any()
