"""Frames: highway-env's y-down plane becomes the right-handed global frame; left is left."""

from __future__ import annotations

import numpy as np
import pytest

from drive_vla.data.labels import command_from_trajectory
from drive_vla.geometry import global_poses_to_local, sim_to_global
from drive_vla.types import Command, Control


@pytest.mark.parametrize("steer, side", [(0.5, 1.0), (-0.5, -1.0)])
def test_positive_steer_turns_left_in_the_ego_frame(world, clear_traffic, steer, side):
    world.reset("highway", 0)
    clear_traffic(world)
    world.ego.speed = 5.0  # ~13 m turning radius at |steer| = 0.5: 2 s cover about 10 m of arc
    start = world.ego_pose
    for _ in range(20):
        world.step(Control(steer=steer, throttle=0.1))
    x, y, yaw = global_poses_to_local(np.array([world.ego_pose]), start)[0]
    assert x > 5.0
    assert side * y > 1.0 and side * yaw > 0.2  # left: positive lateral offset, counter-clockwise yaw
    state = world.ego_state()
    assert side * state.yaw_rate_rps > 0.0 and state.steer == pytest.approx(steer)


@pytest.mark.parametrize("scenario", ["intersection", "roundabout"])
def test_route_turns_match_their_commands(world, scenario):
    seen = set()
    for seed in range(12):
        world.reset(scenario, seed)
        r = world.route
        if r.maneuver in seen:
            continue
        seen.add(r.maneuver)
        # Where the route leaves the maneuver, in the ego frame at the route's (straight) start.
        i1 = int(np.searchsorted(r.arc, r.piece_arc(r.maneuver_end_piece + 1) + 15.0))
        heading = np.arctan2(*(r.xy[1] - r.xy[0])[::-1])
        ref = sim_to_global(*r.xy[0], heading)
        local = global_poses_to_local(np.array([sim_to_global(*r.xy[i1], 0.0)]), ref)[:, :2]
        assert command_from_trajectory(local[-1:]) == r.maneuver, (seed, r.instruction)
    assert seen == {Command.LEFT, Command.RIGHT, Command.STRAIGHT}
