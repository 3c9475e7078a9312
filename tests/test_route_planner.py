"""Route target points: the shared route planner, the Observation field and its checks, frame round trips."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from drive_vla.episode_io import load_observation, save_observation
from drive_vla.geometry import global_points_to_local, local_poses_to_global
from drive_vla.route_planner import RoutePlanner, sample_polyline
from drive_vla.types import CAMERA_NAMES, MAX_ROUTE_TARGET_M, ROUTE_TARGET_POINTS, Batch, EgoState, Observation


def _observation(route_target=None) -> Observation:
    return Observation(
        images={c: np.zeros((18, 32, 3), np.uint8) for c in CAMERA_NAMES},
        intrinsics={c: np.eye(3, dtype=np.float32) for c in CAMERA_NAMES},
        extrinsics={c: np.eye(4, dtype=np.float32) for c in CAMERA_NAMES},
        ego=EgoState(speed_mps=5.0),
        route_target=route_target,
    )


def test_planner_hands_out_the_next_points_and_drops_reached_ones():
    planner = RoutePlanner(min_distance_m=7.5, max_distance_m=50.0)
    planner.set_route(sample_polyline(np.array([[0.0, 0.0], [100.0, 0.0]]), 10.0))
    assert planner.total == 11
    np.testing.assert_allclose(planner.targets(2), [[10.0, 0.0], [20.0, 0.0]])
    assert planner.advance((8.0, 0.0)) == 1  # the 10 m point is within 7.5 m: it is the current one now
    np.testing.assert_allclose(planner.targets(2), [[20.0, 0.0], [30.0, 0.0]])
    for x in np.arange(8.0, 120.0, 1.0):
        planner.advance((x, 0.0))
    np.testing.assert_allclose(planner.targets(3), [[100.0, 0.0]] * 3)  # the end repeats


def test_planner_rejects_bad_input():
    with pytest.raises(ValueError, match="min 10.0, max 5.0"):
        RoutePlanner(10.0, 5.0)
    with pytest.raises(ValueError, match="no route set"):
        RoutePlanner().advance((0.0, 0.0))
    with pytest.raises(ValueError, match="NaN"):
        RoutePlanner().set_route(np.array([[0.0, math.nan]]))
    planner = RoutePlanner()
    planner.set_route(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="car position"):
        planner.advance((math.nan, 0.0))


def test_sample_polyline_keeps_both_ends_and_the_spacing():
    pts = sample_polyline(np.array([[0.0, 0.0], [0.0, 25.0]]), 10.0)
    np.testing.assert_allclose(pts, [[0, 0], [0, 10], [0, 20], [0, 25]])


def test_global_points_to_local_inverts_local_poses_to_global():
    ref = (3.0, -2.0, 0.7)
    local = np.array([[10.0, 1.5], [-4.0, 2.0]])
    glob = local_poses_to_global(np.c_[local, np.zeros(2)], ref)[:, :2]
    np.testing.assert_allclose(global_points_to_local(glob, ref), local, atol=1e-9)


def test_observation_checks_the_route_target_and_batches_carry_a_mask():
    good = np.array([[12.0, 0.5], [22.0, 1.0]], np.float32)
    batch = Batch.from_observations([_observation(good), _observation()])
    assert tuple(batch.route_target.shape) == (2, ROUTE_TARGET_POINTS, 2)
    assert batch.route_target_mask.tolist() == [True, False]
    assert np.allclose(batch.route_target[0].numpy(), good) and not batch.route_target[1].any()
    with pytest.raises(ValueError, match="observation.route_target.*NaN"):
        _observation(np.array([[math.nan, 0.0], [1.0, 0.0]], np.float32))
    with pytest.raises(ValueError, match=f"observation.route_target.*within {MAX_ROUTE_TARGET_M:.0f} m"):
        _observation(np.array([[1e4, 0.0], [1e4, 0.0]], np.float32))
    with pytest.raises(ValueError, match=r"observation.route_target.*shape \(2, 2\)"):
        _observation(np.zeros((3, 2), np.float32))


def test_saved_frames_keep_the_route_target(tmp_path):
    target = np.array([[9.0, -0.25], [19.0, -0.75]], np.float32)
    for obs in (_observation(target), _observation()):
        back = load_observation(save_observation(tmp_path / "f", obs))
        assert (back.route_target is None) == (obs.route_target is None)
        if obs.route_target is not None:
            np.testing.assert_array_equal(back.route_target, target)
    assert dataclasses.replace(_observation(target), instruction="x").route_target is not None


def test_unusable_route_targets_become_none_with_a_logged_fault(caplog):
    from drive_vla.route_planner import usable_route_target

    ok = usable_route_target(np.array([[10.0, 0.0], [20.0, 0.0]]))
    assert ok is not None and ok.dtype == np.float32
    with caplog.at_level("WARNING"):
        assert usable_route_target(np.array([[250.0, 0.0], [260.0, 0.0]]), "observation.route_target") is None
        assert usable_route_target(np.array([[math.nan, 0.0], [1.0, 0.0]])) is None
    assert "observation.route_target" in caplog.text and "without a route target" in caplog.text
