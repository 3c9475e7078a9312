"""CARLA env: its pure episode logic offline (an OpenDRIVE map built by the client), and a short live episode."""

from __future__ import annotations

import os
import queue
import random

import carla
import numpy as np
import pytest

from carla_agents.convert import carla_pose_to_local
from carla_agents.episode import (
    CarlaConnectionError,
    CarlaEnvConfig,
    RouteProgress,
    annotate_route,
    choose_spawn_indices,
    collision_kind,
    copy_settings,
    episode_end,
    forward_speed_mps,
    frame_data,
    road_option_for_turn,
    same_town,
    synchronous_settings,
    town_for_scenario,
    walk_route,
    yaw_rate_rps_from_carla,
)
from carla_agents.route import RoadOption

# Two connected one-lane roads: 100 m straight east, then 100 m curving left (OpenDRIVE curvature > 0).
XODR = """<?xml version="1.0" standalone="yes"?>
<OpenDRIVE><header revMajor="1" revMinor="4" name="t" version="1"></header>
<road name="a" length="100" id="1" junction="-1"><link><successor elementType="road" elementId="2" contactPoint="start"/></link>
<planView><geometry s="0" x="0" y="0" hdg="0" length="100"><line/></geometry></planView>
<lanes><laneSection s="0"><center><lane id="0" type="none" level="false"/></center><right><lane id="-1" type="driving" level="false"><link><successor id="-1"/></link><width sOffset="0" a="3.5" b="0" c="0" d="0"/></lane></right></laneSection></lanes></road>
<road name="b" length="100" id="2" junction="-1"><link><predecessor elementType="road" elementId="1" contactPoint="end"/></link>
<planView><geometry s="0" x="100" y="0" hdg="0" length="100"><arc curvature="0.01"/></geometry></planView>
<lanes><laneSection s="0"><center><lane id="0" type="none" level="false"/></center><right><lane id="-1" type="driving" level="false"><link><predecessor id="-1"/></link><width sOffset="0" a="3.5" b="0" c="0" d="0"/></lane></right></laneSection></lanes></road>
</OpenDRIVE>"""


@pytest.fixture(scope="module")
def offline_map():
    return carla.Map("two_roads", XODR)


def test_walk_route_follows_the_map_topology(offline_map):
    start = offline_map.get_waypoint(carla.Location(1.0, 1.75, 0.0))
    route = walk_route(start, 150.0, 5.0, random.Random(0))
    assert len(route) == 31  # 150 m in 5 m steps, across the road link
    end = route[-1].transform
    assert end.location.x > 140.0 and end.location.y < -5.0  # curved left: CARLA y decreases
    assert end.rotation.yaw < -20.0  # a left turn lowers CARLA's (clockwise) yaw
    options = annotate_route([w.transform.rotation.yaw for w in route], [w.is_junction for w in route])
    assert set(options) == {RoadOption.LANEFOLLOW}


def test_route_progress_along_the_walked_route(offline_map):
    start = offline_map.get_waypoint(carla.Location(1.0, 1.75, 0.0))
    route = walk_route(start, 150.0, 5.0, random.Random(0))
    xy = np.array([carla_pose_to_local(w.transform.location.x, w.transform.location.y, 0.0)[:2] for w in route])
    progress = RouteProgress(xy)
    assert progress.length_m == pytest.approx(150.0, rel=0.01)
    completion, off = progress.update(xy[15] + np.array([0.0, 1.0]))
    assert completion == pytest.approx(0.5, abs=0.01) and off == pytest.approx(1.0, abs=0.05)
    assert progress.update(xy[-1])[0] == pytest.approx(1.0)


def test_route_progress_does_not_skip_ahead_on_loops():
    loop = np.array([[0, 0], [10, 0], [20, 0], [20, 10], [10, 10], [1, 1], [0, 10], [0, 20]], dtype=float)
    progress = RouteProgress(loop, search_ahead=2)
    completion, _ = progress.update((0.5, 0.5))  # near the start AND near point 5
    assert completion == 0.0


def test_junction_annotation_from_recorded_yaws():
    # CARLA yaw: heading east (0), a junction turning to north (-90, a left turn), then east-straight junction
    yaws = [0, 0, -20, -60, -90, -90, -90, -88, -92, -90]
    junction = [False, False, True, True, True, False, False, True, True, False]
    options = annotate_route(yaws, junction)
    assert options[:2] == [RoadOption.LANEFOLLOW] * 2
    assert options[2:5] == [RoadOption.LEFT] * 3
    assert options[7:9] == [RoadOption.STRAIGHT] * 2
    assert road_option_for_turn(85.0) is RoadOption.RIGHT
    assert road_option_for_turn(350.0) is RoadOption.STRAIGHT  # -10 deg after wrapping


def test_settings_copy_and_synchronous_mode():
    base = carla.WorldSettings()
    base.max_substeps = 7
    sync = synchronous_settings(base, 0.05)
    assert sync.synchronous_mode and sync.fixed_delta_seconds == pytest.approx(0.05) and not sync.no_rendering_mode
    assert sync.max_substeps == 7 and not base.synchronous_mode  # the original is untouched
    assert copy_settings(base).max_substeps == 7


def test_scenario_and_town_names():
    assert town_for_scenario("Town05", "Town01") == "Town05"
    assert town_for_scenario("town10HD_Opt/route3", "") == "town10HD_Opt"
    assert town_for_scenario("", "Town01") == "Town01"
    assert town_for_scenario("highway_merge", "Town03") == "Town03"
    assert same_town("Carla/Maps/Town05", "Town05") and not same_town("Carla/Maps/Town05", "Town01")


def test_spawn_choice_is_reproducible():
    a = choose_spawn_indices(50, 10, seed=3)
    assert a == choose_spawn_indices(50, 10, seed=3) and a != choose_spawn_indices(50, 10, seed=4)
    ego, traffic = a
    assert ego not in traffic and len(set(traffic)) == 10
    assert len(choose_spawn_indices(3, 10, seed=0)[1]) == 2
    with pytest.raises(ValueError, match="spawn points"):
        choose_spawn_indices(0, 1, seed=0)


def test_scoring_facts():
    cfg = CarlaEnvConfig()
    assert collision_kind("vehicle.tesla.model3") == "vehicle"
    assert collision_kind("walker.pedestrian.0001") == "pedestrian"
    assert collision_kind("static.prop.streetbarrier") == "static"
    kwargs = {"time_s": 10.0, "completion": 0.3, "distance_to_goal_m": 100.0, "off_route_m": 1.0}
    assert episode_end(cfg, **kwargs, collision=None, standstill_s=0.0) is None
    assert episode_end(cfg, **kwargs, collision="vehicle", standstill_s=0.0) == "collision"
    assert episode_end(cfg, **{**kwargs, "off_route_m": 31.0}, collision=None, standstill_s=0.0) == "off_route"
    assert episode_end(cfg, **kwargs, collision=None, standstill_s=60.0) == "blocked"
    assert episode_end(cfg, **{**kwargs, "time_s": 120.0}, collision=None, standstill_s=0.0) == "timeout"
    assert episode_end(cfg, **{**kwargs, "completion": 1.0}, collision="vehicle", standstill_s=0.0) == "goal"


def test_sensor_queue_picks_the_ticked_frame():
    q: queue.Queue = queue.Queue()
    for f in (7, 8, 9):
        q.put((f, f"image{f}"))
    assert frame_data(q, 8, 0.1, "CAM_FRONT") == "image8"  # frame 7 dropped
    with pytest.raises(TimeoutError, match="no data for frame 10"):
        frame_data(q, 10, 0.1, "CAM_FRONT")  # 9 is dropped, then nothing comes
    q.put((12, "image12"))
    with pytest.raises(TimeoutError, match="got frame 12"):
        frame_data(q, 11, 0.1, "CAM_FRONT")  # the frame was missed


def test_actor_readings_to_ego_frame():
    assert forward_speed_mps((0.0, 3.0, 0.0), (0.0, 1.0, 0.0)) == pytest.approx(3.0)
    assert forward_speed_mps((0.0, -3.0, 0.0), (0.0, 1.0, 0.0)) == pytest.approx(-3.0)
    assert yaw_rate_rps_from_carla(90.0) == pytest.approx(-np.pi / 2)  # clockwise deg/s -> CCW rad/s


def test_config_checks_and_yaml(recorded):
    from drive_vla.config import load_config

    cfg = load_config(CarlaEnvConfig, recorded.repo / "configs/carla/env.yaml", ["town=Town03", "port=2010"])
    assert (cfg.town, cfg.port, cfg.fixed_delta_s) == ("Town03", 2010, 0.05)
    with pytest.raises(ValueError, match="fixed_delta_s"):
        CarlaEnvConfig(fixed_delta_s=0.5)


def test_no_server_gives_a_clear_error():
    from carla_agents.carla_env import connect

    with pytest.raises(CarlaConnectionError, match=r"no CARLA server answers at 127\.0\.0\.1:1"):
        connect("127.0.0.1", 1, 0.5, 1.0)


@pytest.mark.carla
def test_short_live_episode_cleans_up_and_restores_settings():
    """Needs a CARLA server on DRIVE_VLA_CARLA_HOST:PORT (skipped otherwise)."""
    from carla_agents.carla_env import CarlaEnv, connect
    from drive_vla.control import PIDController
    from drive_vla.types import DrivingEnv, Plan, Trajectory

    cfg = CarlaEnvConfig(
        host=os.environ.get("DRIVE_VLA_CARLA_HOST", "127.0.0.1"),
        port=int(os.environ.get("DRIVE_VLA_CARLA_PORT", "2000")),
        camera_width=64,
        camera_height=36,
        n_vehicles=5,
        route_length_m=100.0,
    )
    client = connect(cfg.host, cfg.port, cfg.connect_timeout_s, cfg.timeout_s)
    before = client.get_world().get_settings()
    n_actors_before = len(client.get_world().get_actors())
    with CarlaEnv(cfg, client=client) as env:
        assert isinstance(env, DrivingEnv)
        obs = env.reset("", seed=0)
        assert obs.image_hw == (36, 64) and obs.ego.source == "sim"
        ctrl = PIDController()
        straight = Plan(Trajectory(np.stack([2.0 * np.arange(1, 7), np.zeros(6)], axis=1).astype(np.float32)))
        ego = obs.ego
        for k in range(40):  # 2 s, cameras read every 10th tick as the drive loop does at 2 Hz
            result = env.step(ctrl.step(straight, ego, env.dt_s), observe=k % 10 == 9)
            assert (result.observation is not None) == (k % 10 == 9)
            ego = result.info["ego"]
            for key in ("time_s", "route_completion", "collision", "off_road", "off_route_m", "speed_mps", "reason"):
                assert key in result.info
            assert len(result.info["pose"]) == 3
            if result.done:
                break
        assert result.info["time_s"] > 0.0 and 0.0 <= result.info["route_completion"] <= 1.0
    after = client.get_world().get_settings()
    assert after.synchronous_mode == before.synchronous_mode
    assert (after.fixed_delta_seconds or 0.0) == pytest.approx(before.fixed_delta_seconds or 0.0)
    assert len(client.get_world().get_actors()) == n_actors_before


def test_make_carla_env_applies_cli_values_before_connecting(recorded):
    from carla_agents.carla_env import make_carla_env

    with pytest.raises(CarlaConnectionError, match=r"127\.0\.0\.1:1\b"):
        make_carla_env(
            host="127.0.0.1",
            port=1,
            town="Town05",
            config=recorded.repo / "configs/carla/env.yaml",
            overrides=["connect_timeout_s=0.5"],
        )


def test_drive_cli_constructor_form_without_server():
    """`drive-vla drive --env carla` builds CarlaEnv(host=, port=, town=, image_wh=)."""
    from carla_agents.carla_env import CarlaEnv

    with pytest.raises(CarlaConnectionError, match=r"127\.0\.0\.1:1\b"):
        CarlaEnv(CarlaEnvConfig(connect_timeout_s=0.5), host="127.0.0.1", port=1, town="Town05", image_wh=(64, 36))
