"""Counterfactual obstacles: a car placed standing on the route ahead, branches of recorded keyframes, and
the obstacle scenes make_embedded writes beside the recorded ones."""

from __future__ import annotations

import json

import numpy as np
import pytest

from drive_vla.geometry import global_poses_to_local
from drive_vla.sim.config import CameraConfig, DatasetConfig, WorldConfig
from drive_vla.sim.dataset import branch_label, future_poses, make_embedded, record_episode
from drive_vla.sim.obstacles import obstacle_twin, place_standing_car, read_obstacle_scenes, stopping_gap_m


def _standing(agents):
    return [a for a in agents if "standing" in a.instance_id]


def test_the_car_stands_on_the_route_at_the_gap_and_stays(world, clear_traffic):
    world.reset("highway", 4)
    clear_traffic(world)
    gap = stopping_gap_m(world.ego_speed_mps, world.cfg.expert.max_decel_mps2, 5.0)
    car = place_standing_car(world, gap, "x-standing-000")
    assert car is not None and car.speed == 0.0
    (agent,) = [a for a in world.agents() if a.instance_id == "x-standing-000"]
    local = global_poses_to_local(np.array([[agent.xyz[0], agent.xyz[1], agent.yaw_rad]]), world.ego_pose)[0]
    # rear axle -> ego centre (center_ahead_m) -> front bumper (+ length / 2) -> gap -> car centre (+ 2.5 m)
    ego = world.cfg.ego
    expected = ego.center_ahead_m + ego.length_m / 2 + gap + world.cfg.traffic.car_lwh_m[0] / 2
    assert local[0] == pytest.approx(expected, abs=0.5) and abs(local[1]) < 0.5 and abs(local[2]) < 0.05
    start = car.position.copy()
    for _ in range(60):
        world.step(None)
    assert car.speed == 0.0 and np.allclose(car.position, start)
    assert world.collision is None and world.ego_speed_mps < 5.0  # the expert stops for it


def test_no_car_is_placed_past_the_route_end_or_onto_another_vehicle(world):
    world.reset("highway", 4)
    assert place_standing_car(world, world.route.length_m + 10.0, "a") is None
    other = next(v for v in world.traffic() if v.lane_index == world.ego.lane_index)
    arc, _ = world.route.project(other.position, world.route_arc, window_m=120.0)
    gap = arc - world.route_arc - world.cfg.ego.length_m / 2 - world.cfg.traffic.car_lwh_m[0] / 2
    n = len(world.road.vehicles)
    assert place_standing_car(world, gap, "b") is None and len(world.road.vehicles) == n
    # behind that vehicle the car would be hidden and not the cause of braking: none is placed there either
    assert place_standing_car(world, gap + 15.0, "c") is None and len(world.road.vehicles) == n


def test_the_twin_leaves_the_world_alone_and_keeps_a_stopping_gap(world):
    world.reset("highway", 4)
    before = [(v.instance_id, tuple(v.position)) for v in world.road.vehicles]
    rng = np.random.default_rng(0)
    gaps = []
    for i in range(10):
        twin = obstacle_twin(world, rng, (4.0, 80.0), f"s-{i}")
        if twin is not None:
            (car,) = [v for v in twin.traffic() if v.instance_id == f"s-{i}"]
            arc, _ = twin.route.project(car.position, twin.route_arc, window_m=120.0)
            gaps.append(arc - twin.route_arc - world.cfg.ego.length_m / 2 - world.cfg.traffic.car_lwh_m[0] / 2)
    assert [(v.instance_id, tuple(v.position)) for v in world.road.vehicles] == before
    floor = stopping_gap_m(world.ego_speed_mps, world.cfg.expert.max_decel_mps2, 2.0)
    assert gaps and min(gaps) >= floor - 0.5
    assert obstacle_twin(world, rng, (4.0, floor - 1.0), "none") is None  # no gap in range can stop in time


def test_without_the_floor_cars_stand_closer_than_the_expert_can_stop(world):
    world.reset("highway", 4)
    floor = stopping_gap_m(world.ego_speed_mps, world.cfg.expert.max_decel_mps2, 2.0)
    assert floor > 6.0  # at highway speed the floor is well above the range below
    rng = np.random.default_rng(0)
    gaps = []
    for i in range(10):
        twin = obstacle_twin(world, rng, (1.0, 6.0), f"n-{i}", stopping_floor=False)
        if twin is not None:
            (car,) = [v for v in twin.traffic() if v.instance_id == f"n-{i}"]
            arc, _ = twin.route.project(car.position, twin.route_arc, window_m=120.0)
            gaps.append(arc - twin.route_arc - world.cfg.ego.length_m / 2 - world.cfg.traffic.car_lwh_m[0] / 2)
    assert gaps and 1.0 - 0.5 <= min(gaps) and max(gaps) <= 6.0 + 0.5  # the range as given, under the floor


def test_turned_cars_stand_across_the_route_and_the_default_draws_as_before(world, clear_traffic):
    world.reset("intersection", 5)
    clear_traffic(world)
    lane_heading = world.road.network.get_lane(world.ego.lane_index).heading_at(0.0)
    plain, turned = np.random.default_rng(3), np.random.default_rng(3)
    offsets = []
    for i in range(12):
        a = obstacle_twin(world, plain, (6.0, 30.0), f"p-{i}")
        b = obstacle_twin(world, turned, (6.0, 30.0), f"t-{i}", yaw_range_deg=90.0)
        (car_a,) = [v for v in a.traffic() if v.instance_id == f"p-{i}"]
        (car_b,) = [v for v in b.traffic() if v.instance_id == f"t-{i}"]
        assert car_a.heading == pytest.approx(lane_heading, abs=1e-6)  # yaw 0: facing along the lane, no draw
        assert np.allclose(car_a.position, car_b.position)  # the same gap drawn first: only the yaw differs
        offsets.append(float(np.angle(np.exp(1j * (car_b.heading - lane_heading)))))
        plain.uniform()  # keep the streams aligned: the turned twin drew its yaw after the gap
        for _ in range(10):
            b.step(None)
        assert car_b.speed == 0.0 and car_b.heading == pytest.approx(lane_heading + offsets[-1], abs=1e-6)
    assert max(np.abs(offsets)) <= np.radians(90.0) + 1e-9
    assert max(np.abs(offsets)) > np.radians(45.0)  # some stand side-on, as a crossing car that stopped


def test_branches_keep_the_recorded_episode_and_brake_for_the_car(world):
    plain = record_episode(world, "highway", 11, keyframes=4, image_wh=None)
    branched = record_episode(world, "highway", 11, keyframes=4, image_wh=(32, 18), obstacle_gaps_m=(10.0, 60.0))
    np.testing.assert_allclose(
        [f.ego_pose for f in branched.frames], [f.ego_pose for f in plain.frames]
    )  # the branches draw from their own generator
    assert all(f.obstacle_branch is None for f in plain.frames)
    frames = [f for f in branched.frames[:4] if f.obstacle_branch is not None]
    assert frames
    for k, f in enumerate(branched.frames[:4]):
        if f.obstacle_branch is None:
            continue
        branch, future = f.obstacle_branch
        assert branch.ego_pose == f.ego_pose and branch.images is not None and len(future) == 6
        assert len(_standing(branch.agents)) == 1 and not _standing(f.agents)
        label, plan = branch_label(branched, branch, future, 3.5)
        assert plan[-1, 0] < future_poses(branched, k)[-1, 0] - 5.0  # it covers less ground than it did
        assert label["control"]["brake"] > 0.0 and "stop" in label["explanation"]


def test_make_embedded_writes_obstacle_scenes_for_training_scenes(tmp_path):
    from drive_vla.data.expert_plans import PlanLabelledReader, read_expert_plans

    world_cfg = WorldConfig(camera=CameraConfig(width=32, height=18))
    cfg = DatasetConfig(keyframes_per_scene=3, obstacle_scene_fraction=1.0, world=world_cfg)
    summary = make_embedded(tmp_path / "emb", 3, seed=3, image_wh=(32, 18), scenario_types=["highway"], config=cfg)
    splits = json.loads((tmp_path / "emb" / "v1.0-embedded" / "splits.json").read_text())
    assert summary["scenes"] == 5 and summary["obstacle_scenes"] == 2  # both training scenes, never validation
    assert len(splits["train"]) == 4 and len(splits["val"]) == 1
    reader = PlanLabelledReader(tmp_path / "emb", "v1.0-embedded")
    plans = read_expert_plans(tmp_path / "emb", "v1.0-embedded")
    shadows, extra = splits["train"][2:], 0
    by_scene: dict[str, list[int]] = {}
    for i, token in enumerate(reader.tokens):
        by_scene.setdefault(reader.get(token).meta.scene, []).append(i)
    for original, shadow in zip(splits["train"][:2], shadows):
        a, b = by_scene[original], by_scene[shadow]
        assert len(a) == len(b) == 3
        for i, j in zip(a, b):
            np.testing.assert_allclose(reader.ego_pose(i), reader.ego_pose(j))  # the same ego, state and history
            np.testing.assert_allclose(reader.history(i), reader.history(j))
            assert reader.ego_state(i).speed_mps == pytest.approx(reader.ego_state(j).speed_mps)
            more = len(reader.boxes(j).xyz) - len(reader.boxes(i).xyz)  # the standing car, where one was placed
            assert more in (0, 1) and reader.tokens[j] in plans
            extra += more
    assert extra == summary["obstacle_samples"] >= 4
    assert read_obstacle_scenes(tmp_path / "emb", "v1.0-embedded") == dict(zip(shadows, splits["train"][:2]))
    assert read_obstacle_scenes(tmp_path, "v1.0-embedded") == {}  # a dataset without obstacle scenes


def test_obstacle_settings_are_checked():
    with pytest.raises(ValueError, match="obstacle_scene_fraction"):
        DatasetConfig(obstacle_scene_fraction=1.5)
    with pytest.raises(ValueError, match="obstacle_gap_m"):
        DatasetConfig(obstacle_gap_m=(20.0, 5.0))
    with pytest.raises(ValueError, match="obstacle_gap_m"):
        DatasetConfig(obstacle_gap_m=(3.0,))
    with pytest.raises(ValueError, match="obstacle_yaw_deg"):
        DatasetConfig(obstacle_yaw_deg=-10.0)
