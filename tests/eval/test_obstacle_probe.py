"""The obstacle probe: keyframe pairs with and without a standing car, travel, overruns, and the CLI verb."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from drive_vla.eval.obstacle_probe import ego_front_m, obstacle_pairs, probe, run
from drive_vla.types import STEP_DT_S, Plan, Trajectory


@pytest.fixture(scope="module")
def obstacle_data(tmp_path_factory):
    from drive_vla.sim.config import CameraConfig, DatasetConfig, WorldConfig
    from drive_vla.sim.dataset import make_embedded

    root = tmp_path_factory.mktemp("obstacles") / "emb"
    world = WorldConfig(camera=CameraConfig(width=32, height=18))
    cfg = DatasetConfig(keyframes_per_scene=4, obstacle_scene_fraction=1.0, val_fraction=0.0, world=world)
    summary = make_embedded(root, 2, seed=3, image_wh=(32, 18), scenario_types=["highway"], config=cfg)
    return root, summary


class _Constant:
    """Plans ``speed`` m/s straight ahead whatever it sees."""

    def __init__(self, speed: float) -> None:
        self.speed = speed

    def reset(self):
        pass

    def predict(self, obs):
        xy = np.stack([np.arange(1, 7) * self.speed * STEP_DT_S, np.zeros(6)], axis=1)
        return Plan(trajectory=Trajectory(xy=xy.astype(np.float32)))


def _reader(root):
    from drive_vla.data.expert_plans import PlanLabelledReader

    return PlanLabelledReader(root, "v1.0-embedded", "train", image_hw=(18, 32))


def test_pairs_find_the_standing_car(obstacle_data):
    from drive_vla.sim.obstacles import read_obstacle_scenes

    root, summary = obstacle_data
    reader = _reader(root)
    pairs = obstacle_pairs(reader, read_obstacle_scenes(root, "v1.0-embedded"), 100)
    assert len(pairs) == summary["obstacle_samples"] > 0
    for i, j, gap in pairs:
        assert reader.get(reader.tokens[i]).meta.scene != reader.get(reader.tokens[j]).meta.scene
        np.testing.assert_allclose(reader.ego_pose(i), reader.ego_pose(j))
        assert 4.0 <= gap <= 50.5  # DatasetConfig.obstacle_gap_m, to the lane polyline's sampling
    assert len(obstacle_pairs(reader, read_obstacle_scenes(root, "v1.0-embedded"), 1)) == 1


def test_probe_counts_overruns_and_the_experts_braking(obstacle_data):
    from drive_vla.sim.obstacles import read_obstacle_scenes

    root, _ = obstacle_data
    reader = _reader(root)
    pairs = obstacle_pairs(reader, read_obstacle_scenes(root, "v1.0-embedded"), 100)
    rows = probe(_Constant(12.0), reader, pairs)
    everything = rows[0]
    assert everything["gap"] == "all" and everything["pairs"] == len(pairs)
    assert everything["travel_without_m"] == everything["travel_with_m"] == pytest.approx(36.0)  # blind to the car
    gaps = np.array([g for _, _, g in pairs])
    assert everything["overrun_rate"] == pytest.approx(float(np.mean(36.0 > gaps)), abs=1e-3)
    assert everything["expert_with_m"] < 36.0 and everything["expert_overrun_rate"] == 0.0
    assert sum(r["pairs"] for r in rows[1:]) == len(pairs)  # the gap bins split the pairs
    assert ego_front_m() == pytest.approx(1.44 + 4.084 / 2)


def test_run_rejects_a_dataset_without_obstacle_scenes(tmp_path):
    args = argparse.Namespace(policy=["p"], dataroot=str(tmp_path), version="v1.0-embedded", split="train", max_pairs=5)
    with pytest.raises(ValueError, match="no obstacle scenes.*--obstacle-scenes"):
        run(args)
    with pytest.raises(ValueError, match="--max-pairs: got 0"):
        run(argparse.Namespace(**{**vars(args), "max_pairs": 0}))
