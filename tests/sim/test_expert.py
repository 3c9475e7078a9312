"""Expert driver: completes routes without collisions, and every decision says why."""

from __future__ import annotations

import pytest

from drive_vla.sim.embedded import EmbeddedWorld
from drive_vla.sim.expert import REASONS
from drive_vla.types import Command

SCENARIOS = ["highway", "merge", "intersection", "roundabout"]


def _drive(world: EmbeddedWorld, scenario: str, seed: int, seconds: float) -> list:
    world.reset(scenario, seed)
    world.start_arc = world.route_arc
    decisions = []
    while world.time_s < seconds and not world.done:
        d = world.expert_decision()
        decisions.append((d, {a.instance_id for a in world.agents()}))
        world.step(None)
    return decisions


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_expert_drives_a_while_without_collision(world, scenario):
    _drive(world, scenario, 1, 12.0)
    assert world.collision is None and not world.off_road
    assert world.route_arc - world.start_arc > 40.0 and world.distance_from_route_m < 2.0


@pytest.mark.slow
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_expert_completes_routes_in_most_seeds(world, scenario):
    goals = collisions = 0
    for seed in range(4):
        _drive(world, scenario, seed, 60.0)
        goals += world.goal_reached
        collisions += world.collision is not None
    assert collisions == 0
    assert goals >= 3


def test_decisions_carry_their_reason_and_numbers(world):
    seen = set()
    for seed in range(3):
        for d, ids in _drive(world, "intersection", seed, 20.0):
            seen.add(d.reason)
            assert d.reason in REASONS and d.explanation.endswith(".") and len(d.explanation) > 20
            if d.reason == "following":
                assert d.lead_id in ids and d.lead_distance_m >= 0.0 and d.lead_speed_mps >= 0.0
                assert f"{d.lead_distance_m:.0f} m ahead" in d.explanation
            if d.reason == "yielding":
                assert d.yield_to in ids
            if d.reason == "turning":
                want = {Command.LEFT: "left", Command.RIGHT: "right"}[world.route.maneuver]
                assert d.turn == want and want in d.explanation
            if d.reason == "stopping":
                assert d.stop_cause in ("blocked", "goal")
            c = d.control
            assert -1.0 <= c.steer <= 1.0 and (c.throttle == 0.0 or c.brake == 0.0)
    assert {"following", "yielding", "turning", "stopping"} <= seen


def test_merge_expert_changes_into_the_highway_lane(world):
    for seed in range(6):
        world.reset("merge", seed)
        if world.route.merge_to is not None:
            break
    decisions = _drive(world, "merge", seed, 16.0)
    assert world.ego.lane_index[2] == 1 and world.ego.lane_index[:2] in (("b", "c"), ("c", "d"), ("d", "e"))
    assert any(d.reason == "turning" and d.turn == "left" for d, _ in decisions)
    assert world.collision is None


def _speed_at_line(world: EmbeddedWorld, seed: int) -> tuple[float, bool]:
    """The ego's speed as its front crosses the yield line of an intersection route, and whether it got there."""
    world.reset("intersection", seed)
    route = world.route
    line = route.piece_arc(route.stop_piece) - world.cfg.ego.length_m / 2
    while world.time_s < 30.0 and not world.done:
        if world.route_arc >= line:
            return world.ego_speed_mps, True
        world.step(None)
    return world.ego_speed_mps, False


def test_cautious_expert_approaches_yield_lines_slowly():
    from drive_vla.sim.config import ExpertConfig, WorldConfig

    free = EmbeddedWorld()
    cautious = EmbeddedWorld(WorldConfig(expert=ExpertConfig(junction_approach_mps=4.0)))
    v_free, reached_free = _speed_at_line(free, 800019)
    v_cautious, reached = _speed_at_line(cautious, 800019)
    assert reached_free and reached and v_free > 8.0
    assert v_cautious < 7.0 < v_free  # decelerating to 4 m/s at the line (IDM follows the target with a lag)


def test_expert_ignores_crossing_traffic_beyond_its_perception_range():
    from drive_vla.sim.config import ExpertConfig, WorldConfig

    world = EmbeddedWorld(WorldConfig(expert=ExpertConfig(perception_range_m=30.0)))
    world.reset("intersection", 800011)
    ego = world.ego.position
    far = [v for v in world.traffic() if ((v.position - ego) ** 2).sum() ** 0.5 > 30.0]
    near = [v for v in world.traffic() if ((v.position - ego) ** 2).sum() ** 0.5 <= 30.0]
    assert far
    assert not any(world.expert._in_sight(world, v, 90.0) for v in far)
    assert all(world.expert._in_sight(world, v, 90.0) for v in near)
    assert all(
        EmbeddedWorld().expert._in_sight(world, v, 90.0) for v in far if ((v.position - ego) ** 2).sum() < 90.0**2
    )


def test_cruise_cap_holds_the_expert_below_it():
    from drive_vla.sim.config import ExpertConfig, WorldConfig

    def top_speed_after(world: EmbeddedWorld, t0_s: float) -> float:
        """The highest speed from ``t0_s`` to 25 s (the scenario may start the ego above the cap)."""
        world.reset("highway", 800001)
        top = 0.0
        while world.time_s < 25.0 and not world.done:
            world.step(None)
            if world.time_s >= t0_s:
                top = max(top, world.ego_speed_mps)
        return top

    assert top_speed_after(EmbeddedWorld(), 10.0) > 18.0  # this route's cruise speed is above the cap
    assert top_speed_after(EmbeddedWorld(WorldConfig(expert=ExpertConfig(max_cruise_mps=15.0))), 10.0) < 15.5


def test_cruise_cap_must_not_be_negative():
    from drive_vla.sim.config import ExpertConfig

    with pytest.raises(ValueError, match=r"expert.max_cruise_mps: got -1.0, expected 0 \(off\) or a speed > 0"):
        ExpertConfig(max_cruise_mps=-1.0)
