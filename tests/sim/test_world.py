"""EmbeddedWorld and its core World: determinism, API contract, frames, control mapping, composition, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from drive_vla.config import load_config
from drive_vla.geometry import global_poses_to_local, sim_to_global
from drive_vla.sim.config import CameraConfig, DatasetConfig, WorldConfig
from drive_vla.sim.embedded import EmbeddedWorld
from drive_vla.sim.expert import Expert
from drive_vla.sim.scenarios import make_scenario
from drive_vla.sim.world import World
from drive_vla.types import CAMERA_NAMES, Command, Control, EgoState, Observation


def _trace(world: EmbeddedWorld, scenario: str, seed: int, steps: int = 30):
    world.reset(scenario, seed)
    for _ in range(steps):
        world.step(None)
    agents = sorted((a.instance_id, tuple(np.round(a.xyz, 9))) for a in world.agents())
    return world.pose_log(), agents, world.route.lanes


@pytest.mark.parametrize("scenario", ["intersection", "roundabout"])
def test_reset_is_deterministic_for_a_seed(world, scenario):
    log_a, agents_a, route_a = _trace(world, scenario, 3)
    log_b, agents_b, route_b = _trace(EmbeddedWorld(world.cfg), scenario, 3)
    np.testing.assert_array_equal(log_a, log_b)
    assert agents_a == agents_b and route_a == route_b
    log_c, agents_c, _ = _trace(world, scenario, 4)
    assert not (log_c.shape == log_a.shape and np.allclose(log_c, log_a) and agents_c == agents_a)


def test_unknown_scenario_lists_the_available_ones(world):
    with pytest.raises(ValueError, match=r"scenario: got 'city'.*\['highway', 'intersection', 'merge', 'roundabout'\]"):
        world.reset("city", 0)
    assert EmbeddedWorld.scenario_names() == ["highway", "intersection", "merge", "roundabout"]


@pytest.mark.parametrize("seed", [-1, 1.5, "3", True])
def test_bad_seed_raises(world, seed):
    with pytest.raises(ValueError, match="seed"):
        world.reset("highway", seed)


def test_bad_image_size_raises_naming_the_field(world):
    world.reset("highway", 0)
    with pytest.raises(ValueError, match=r"image\.width: got 0"):
        world.render(0, 36)
    with pytest.raises(ValueError, match=r"image\.height: got 36\.5"):
        world.observation(64, 36.5)
    with pytest.raises(ValueError, match=r"world\.camera\.width: got 8"):
        WorldConfig(camera=CameraConfig(width=8))


def test_step_needs_reset_and_a_control(world):
    with pytest.raises(RuntimeError, match="reset"):
        world.step(None)
    world.reset("highway", 0)
    with pytest.raises(ValueError, match="control: got dict"):
        world.step({"steer": 0.0})


def test_core_world_needs_a_control_and_a_started_episode(tiny_config):
    core = World(tiny_config)
    with pytest.raises(RuntimeError, match="start"):
        core.step(Control())
    core.start(make_scenario("highway"), 0)
    assert core.in_warmup and core.time_s < 0.0
    with pytest.raises(ValueError, match="control: got NoneType, expected a drive_vla.types.Control$"):
        core.step(None)


def test_embedded_world_is_the_core_world_driven_by_the_expert(world, tiny_config):
    world.reset("roundabout", 5)
    for _ in range(10):
        world.step(None)
    core, expert = World(tiny_config), Expert(tiny_config.expert, tiny_config.ego)
    core.start(make_scenario("roundabout"), 5)
    expert.reset(core.desired_speed_mps)
    while core.in_warmup or core.time_s < world.time_s - 1e-9:
        core.step(expert.decide(core).control)
    np.testing.assert_array_equal(core.pose_log(), world.pose_log())
    assert [a.instance_id for a in core.agents()] == [a.instance_id for a in world.agents()]


def test_step_reports_the_facts(world):
    world.reset("intersection", 1)
    assert world.time_s == 0.0 and world.is_keyframe
    info = world.step(None)
    assert set(info) >= {
        "time_s",
        "route_completion",
        "collision",
        "off_road",
        "off_route_m",
        "speed_mps",
        "done",
        "reason",
    }
    assert info["time_s"] == pytest.approx(0.1) and not info["keyframe"]
    assert 0.0 < info["route_completion"] < 0.5 and info["collision"] is None and not info["done"]
    for _ in range(4):
        info = world.step(None)
    assert info["keyframe"] and info["time_s"] == pytest.approx(0.5)


def test_observation_history_is_the_logged_poses_in_the_ego_frame(world):
    world.reset("roundabout", 2)
    for _ in range(7):
        world.step(None)
    obs = world.observation()
    assert isinstance(obs, Observation) and isinstance(obs.ego, EgoState) and obs.ego.source == "sim"
    assert all(obs.images[c].shape == (36, 64, 3) and obs.images[c].dtype == np.uint8 for c in CAMERA_NAMES)
    log = world.pose_log()
    times = world.time_s - np.array([2.0, 1.5, 1.0, 0.5])
    rows = [int(np.argmin(np.abs(log[:, 0] - t))) for t in times]
    np.testing.assert_allclose(obs.history, global_poses_to_local(log[rows, 1:], world.ego_pose), atol=1e-5)
    assert obs.history[-1, 0] < 0.0  # half a second ago the car was behind its current position
    assert isinstance(obs.command, Command) and obs.instruction == world.instruction


def test_ego_pose_is_the_rear_axle_behind_the_simulated_centre(world):
    world.reset("merge", 0)
    x, y, yaw = world.ego_pose
    cx, cy, cyaw = sim_to_global(*world.ego.position, world.ego.heading)
    c = world.cfg.ego.center_ahead_m
    assert (x + c * math.cos(yaw), y + c * math.sin(yaw), yaw) == pytest.approx((cx, cy, cyaw))


def test_agents_are_highway_env_vehicles_in_the_global_frame(world):
    world.reset("intersection", 0)
    ids_before = {a.instance_id for a in world.agents()}
    for v, a in zip(world.traffic(), world.agents()):
        x, y, yaw = sim_to_global(*v.position, v.heading)
        assert a.instance_id == v.instance_id and a.category in ("vehicle.car", "vehicle.truck")
        assert a.xyz == pytest.approx([x, y, v.height_m / 2]) and a.yaw_rad == pytest.approx(yaw)
        assert a.lwh[0] == v.LENGTH and a.lwh[1] == v.WIDTH
    world.step(None)
    assert ids_before & {a.instance_id for a in world.agents()}  # ids are stable over steps
    boxes = world.agent_boxes()
    assert len(boxes) == len(world.agents()) and boxes.instance == tuple(a.instance_id for a in world.agents())


def test_control_maps_to_stated_accelerations(world, clear_traffic):
    world.reset("highway", 0)
    clear_traffic(world)
    world.ego.speed = 0.0
    for _ in range(10):
        world.step(Control(throttle=1.0))
    e = world.cfg.ego
    assert world.ego_speed_mps == pytest.approx(e.max_accel_mps2 - e.coast_decel_mps2, abs=0.35)
    for _ in range(10):
        world.step(Control(brake=1.0))
    assert world.ego_speed_mps == 0.0  # stops, never reverses
    assert world.ego_state().steer == 0.0


def test_world_config_loads_from_yaml():
    cfg = load_config(WorldConfig, "configs/sim/world.yaml", ["camera.width=64"])
    assert cfg.camera.width == 64 and cfg.dt_s == 0.1
    ds = load_config(DatasetConfig, "configs/sim/dataset.yaml")
    assert ds.keyframes_per_scene == 40 and ds.world.traffic.density_range == (0.6, 1.4)


def test_route_target_follows_the_route_ahead(world):
    """The route target is the next two route points ahead, 10 m apart, on the route; it moves with the car."""
    from drive_vla.types import ROUTE_TARGET_POINTS

    world.reset("highway", 3)
    obs = world.observation()
    assert obs.route_target is not None and obs.route_target.shape == (ROUTE_TARGET_POINTS, 2)
    first = obs.route_target.copy()
    assert 7.5 < first[0, 0] <= 17.5 + 1e-3 and abs(first[0, 1]) < 0.5  # the expert drives on its lane
    assert np.isclose(np.linalg.norm(first[1] - first[0]), world.cfg.route_point_spacing_m, atol=0.5)
    for _ in range(10):
        world.step(None)
    again = world.route_target()
    assert np.all(again[:, 0] > 0) and not np.allclose(again, first)


def test_a_car_far_from_its_route_still_gets_an_observation_without_a_route_target(world):
    world.reset("highway", 3)
    world.shift_ego_sideways(250.0)  # farther than any usable route target
    obs = world.observation()
    assert obs.route_target is None and np.abs(world.route_target()).max() > 200.0


def test_on_a_merge_the_route_targets_change_lanes_before_the_merge_lane_ends(world):
    """The route runs along the merge lane to its end (a barrier) and jumps onto the next lane; the route
    planner's points instead move into the target lane early in the merge lane, as a global plan does."""
    seed = next(s for s in range(1, 60) if (world.reset("merge", s) or world.route.merge_to is not None))
    route, p = world.route, world.route.maneuver_piece
    guided = route.guidance_xy(world.lanes)
    merge_lane = world.road.network.get_lane(route.lanes[p])
    target_lane = world.road.network.get_lane((*route.lanes[p][:2], route.merge_to))
    on = (route.arc >= route.piece_arc(p)) & (route.arc < route.piece_arc(p + 1))
    s = route.arc[on] - route.piece_arc(p)
    lateral = np.array([target_lane.local_coordinates(xy)[1] for xy in guided[on]])
    assert np.allclose(lateral[s > 46.0], 0.0, atol=0.05), seed  # on the target lane well before the end
    assert np.allclose(guided[on][s < 5.0], route.xy[on][s < 5.0])  # still on the merge lane at its start
    assert np.all(np.abs(np.diff(lateral)) < 0.5)  # no sideways jump
    assert merge_lane.length > 46.0
    assert np.array_equal(guided[~on], route.xy[~on])  # everything off the merge piece is the route itself
    world.reset("highway", 3)
    assert np.array_equal(world.route.guidance_xy(world.lanes), world.route.xy)


def test_the_embedded_world_reports_the_road_cruise_speed(world):
    for scenario in ("highway", "intersection"):
        world.reset(scenario, 7)
        lane = world.road.network.get_lane(world.route.lanes[world.route_piece])
        expected = min(world.desired_speed_mps, lane.speed_limit or math.inf)
        obs = world.observation()
        assert obs.speed_limit_mps == pytest.approx(expected) and obs.speed_limit_mps > 0


def test_the_first_contact_is_recorded_in_the_ego_frame(world):
    """Ramming the car ahead records who was hit, where (ahead, left) and the speeds just before contact."""
    from drive_vla.types import Control

    world.reset("highway", 3)
    ego = world.ego
    lead = min(world.traffic(), key=lambda v: np.linalg.norm(v.position - ego.position))
    forward = np.array([math.cos(lead.heading), math.sin(lead.heading)])
    ego.position = lead.position - 7.0 * forward
    ego.heading, ego.speed, lead.speed = lead.heading, 25.0, 5.0
    for _ in range(30):
        info = world.step(Control(throttle=1.0))
        if info["collision"]:
            break
    d = world.collision_detail
    assert info["collision"] == "vehicle" and d["with"] == world.collision_with == lead.instance_id
    assert 3.0 < d["ahead_m"] < 7.0 and abs(d["left_m"]) < 1.0 and abs(d["heading_rad"]) < 0.2
    assert d["ego_speed_mps"] > d["other_speed_mps"] > 0.0


def test_traffic_stop_events_bring_a_car_to_rest_and_release_it():
    """With stop events, a car brakes to a standstill within its event, stands, then drives on; the expert
    still finishes without a collision; a bad rate names the field; without events nothing stands."""
    import dataclasses

    from drive_vla.sim.config import TrafficConfig, teacher_world

    with pytest.raises(ValueError, match="traffic.stop_rate_per_min"):
        TrafficConfig(stop_rate_per_min=-1.0)
    with pytest.raises(ValueError, match="traffic.stop_duration_s"):
        TrafficConfig(stop_duration_s=(3.0, 1.0))
    world = EmbeddedWorld(dataclasses.replace(teacher_world(), traffic=TrafficConfig(stop_rate_per_min=6.0)))
    world.reset("highway", 3)
    stood, moved_after = set(), set()
    while not world.done and world.time_s < 30.0:
        world.step(None)
        for v in world.road.vehicles:
            if v is world.ego or not getattr(v, "stops", ()):
                continue
            if v.speed == 0.0 and any(a <= v.age_s < b for a, b in v.stops):
                stood.add(v.instance_id)
            elif v.instance_id in stood and v.speed > 1.0:
                moved_after.add(v.instance_id)
    assert stood and moved_after
    assert world.collision is None
