"""FastRoad: the same neighbours and collisions as highway-env's Road, computed faster."""

from __future__ import annotations

import numpy as np
import pytest
from highway_env.road.road import Road

from drive_vla.sim.roads import lane_coordinates


@pytest.mark.parametrize("scenario, seed", [("highway", 0), ("merge", 1), ("intersection", 2), ("roundabout", 3)])
def test_neighbour_search_matches_highway_env(world, scenario, seed):
    world.reset(scenario, seed)
    for _ in range(15):
        world.step(None)
    road = world.road
    road.act()  # fresh per-step cache
    checked = 0
    for v in road.vehicles:
        for index in [v.lane_index, *road.network.side_lanes(v.lane_index)]:
            assert road.neighbour_vehicles(v, index) == Road.neighbour_vehicles(road, v, index)
            checked += 1
    assert checked >= len(road.vehicles)


def test_vectorised_lane_coordinates_match_the_lanes(world):
    for scenario in ("merge", "roundabout"):
        world.reset(scenario, 0)
        points = np.random.default_rng(0).uniform(-60, 60, size=(50, 2)) + world.ego.position
        for lane in world.road.network.lanes_list():
            s, r = lane_coordinates(lane, points)
            expected = np.array([lane.local_coordinates(p) for p in points])
            np.testing.assert_allclose(np.stack([s, r], axis=1), expected, atol=1e-9)


@pytest.mark.parametrize("scenario", ["highway", "merge"])
def test_traffic_evolves_exactly_as_on_highway_env_roads(tiny_config, scenario):
    from types import MethodType

    from drive_vla.sim.embedded import EmbeddedWorld

    fast, plain = EmbeddedWorld(tiny_config), EmbeddedWorld(tiny_config)
    fast.reset(scenario, 4)
    plain.reset(scenario, 4)
    # Same episode from here, one on highway-env's own neighbour search and collision loop.
    plain.road.neighbour_vehicles = MethodType(Road.neighbour_vehicles, plain.road)
    plain.road.step = MethodType(Road.step, plain.road)
    for _ in range(60):
        fast.step(None)
        plain.step(None)
    np.testing.assert_array_equal(fast.pose_log(), plain.pose_log())
    a = [(x.instance_id, tuple(x.xyz)) for x in fast.agents()]
    b = [(x.instance_id, tuple(x.xyz)) for x in plain.agents()]
    assert a == b


def test_conflict_check_matches_highway_env(world):
    from highway_env.road.regulation import RegulatedRoad

    world.reset("intersection", 2)
    for _ in range(20):
        world.step(None)
    vehicles = world.road.vehicles
    pairs = [(a, b) for i, a in enumerate(vehicles) for b in vehicles[i + 1 :]]
    ours = [bool(world.road.is_conflict_possible(a, b)) for a, b in pairs]
    theirs = [bool(RegulatedRoad.is_conflict_possible(a, b)) for a, b in pairs]  # None when no conflict
    assert ours == theirs and len(pairs) >= 3
