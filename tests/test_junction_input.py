"""The junction-distance input: Observation checks, frame and label round trips, the embedded world, CARLA's plan."""

from __future__ import annotations

import math

import numpy as np
import pytest

from carla_agents.route import RoadOption, RoutePlanner, junction_distance
from drive_vla.data.drivelm import check_label, junction
from drive_vla.episode_io import load_observation, save_observation
from drive_vla.sim.config import teacher_world
from drive_vla.sim.embedded import EmbeddedWorld
from drive_vla.types import CAMERA_NAMES, JUNCTION_HORIZON_M, Batch, EgoState, Observation


def _observation(distance=None) -> Observation:
    return Observation(
        images={c: np.zeros((18, 32, 3), np.uint8) for c in CAMERA_NAMES},
        intrinsics={c: np.eye(3, dtype=np.float32) for c in CAMERA_NAMES},
        extrinsics={c: np.eye(4, dtype=np.float32) for c in CAMERA_NAMES},
        ego=EgoState(speed_mps=5.0),
        junction_m=distance,
    )


@pytest.mark.parametrize("bad", [math.nan, math.inf, -0.5, JUNCTION_HORIZON_M + 1.0])
def test_observation_names_the_field_of_a_bad_junction_distance(bad):
    with pytest.raises(ValueError, match="observation.junction_m"):
        _observation(bad)


def test_batches_carry_the_distance_and_a_mask_and_frames_keep_it(tmp_path):
    batch = Batch.from_observations([_observation(12.5), _observation(0.0), _observation()])
    assert batch.junction.tolist() == pytest.approx([12.5, 0.0, 0.0])
    assert batch.junction_mask.tolist() == [True, True, False]
    for obs in (_observation(42.0), _observation()):
        assert load_observation(save_observation(tmp_path / "f", obs)).junction_m == obs.junction_m


def test_labels_read_the_distance_and_name_a_bad_one():
    assert junction({"junction_m": 8.5}) == 8.5 and junction({}) is None
    check_label({"junction_m": 0.0})
    for bad in ("near", True, -1.0, 500.0):
        with pytest.raises(ValueError, match=r"labels\[t\].junction_m"):
            check_label({"junction_m": bad}, "labels[t]")


def test_the_world_counts_down_to_the_yield_line_and_reads_the_horizon_past_it():
    """On an intersection route the distance falls by what the ego drives until the line, the teacher
    slows to its approach speed there, and once the ego is through it reads the horizon; a highway has none."""
    world = EmbeddedWorld(teacher_world())
    world.reset("intersection", 11)
    seen, speeds = [], []
    while not world.done and world.time_s < 40.0:
        obs = world.observation(32, 18)
        seen.append((obs.junction_m, world.to_yield_line_m()))
        speeds.append(world.ego_speed_mps)
        world.step(None)
    d = np.array([s[0] for s in seen])
    ahead = d < JUNCTION_HORIZON_M
    assert ahead[0] and not ahead[-1]  # the route starts before its junction and ends past it
    first_past = int(np.argmin(ahead))
    assert np.all(np.diff(d[:first_past]) <= 1e-9)  # counts down while ahead
    assert np.all(d[first_past:] == JUNCTION_HORIZON_M)  # and stays at the horizon once behind
    near = [v for (dist, _), v in zip(seen, speeds) if dist < 2.0]
    assert near and max(near) <= teacher_world().expert.junction_approach_mps + 0.5
    world.reset("highway", 11)
    assert world.to_yield_line_m() is None and world.observation(32, 18).junction_m == JUNCTION_HORIZON_M


def test_carla_plan_distance_runs_to_the_first_junction_waypoint():
    points = np.array([[float(x), 0.0] for x in range(0, 200, 10)])
    options = [RoadOption.LANEFOLLOW] * 6 + [RoadOption.LEFT] * 3 + [RoadOption.LANEFOLLOW] * 11
    assert junction_distance([5.0, 0.0], points, options) == pytest.approx(55.0)
    assert junction_distance([62.0, 0.0], points[6:], options[6:]) == JUNCTION_HORIZON_M  # inside: entry behind
    assert junction_distance([5.0, 0.0], points, [RoadOption.LANEFOLLOW] * 20) == JUNCTION_HORIZON_M
    far = [RoadOption.LANEFOLLOW] * 15 + [RoadOption.STRAIGHT] * 5  # the junction lies 150 m on
    assert junction_distance([0.0, 0.0], points, far) == JUNCTION_HORIZON_M
    planner = RoutePlanner()
    planner.set_route(points, options)
    assert planner.run_step([22.0, 0.5]).junction_m == pytest.approx(math.hypot(8.0, 0.5) + 30.0)


def test_a_junction_range_makes_farther_junctions_read_alike():
    """With ``junction_range_m`` 50, 60 m and the 100 m horizon give the same features (a highway looks like
    any road far from a junction) while 10 m and 40 m still differ; an unknown distance reads the learned vector."""
    import torch

    from drive_vla.model.state import JunctionEncoder

    torch.manual_seed(0)
    enc = JunctionEncoder(8, range_m=50.0)
    d = torch.tensor([60.0, JUNCTION_HORIZON_M, 10.0, 40.0, 5.0])
    out = enc(d, torch.full((5,), 8.0), torch.tensor([True, True, True, True, False]))
    assert torch.equal(out[0], out[1])
    assert not torch.allclose(out[2], out[3])
    assert torch.equal(out[4], enc.unknown)
    full = JunctionEncoder(8)  # the default range is the horizon: 60 m and 100 m differ
    out = full(d[:2], torch.full((2,), 8.0), torch.ones(2, dtype=torch.bool))
    assert not torch.allclose(out[0], out[1])
