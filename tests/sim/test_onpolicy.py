"""On-policy rollouts: counterfactual expert labels, early stops, the written scenes read back with their plans."""

from __future__ import annotations

import numpy as np
import pytest

from drive_vla.baselines import make_baseline
from drive_vla.control import make_controller
from drive_vla.data.concat import ConcatSamples
from drive_vla.data.datamodule import DriveDataModule
from drive_vla.data.expert_plans import PlanLabelledReader, read_expert_plans, write_expert_plans
from drive_vla.data.reader import NuScenesReader
from drive_vla.sim.dataset import future_poses, record_episode, sample_label
from drive_vla.sim.onpolicy import expert_label, rollout, write_onpolicy_dataset
from drive_vla.types import FUTURE_STEPS


@pytest.mark.parametrize("scenario", ["intersection", "merge"])
def test_counterfactual_plan_equals_the_future_the_expert_then_drives(world, scenario):
    """When the expert itself drives on, the relabelled future is exactly the recorded one."""
    episode = record_episode(world, scenario, 11, keyframes=3 + FUTURE_STEPS, image_wh=None)
    world.reset(scenario, 11)
    for k in range(3):
        pose = world.ego_pose
        label, plan = expert_label(world, episode.frames[k], ego_front_m=3.5)
        assert world.ego_pose == pose  # the rollout ran on a copy
        np.testing.assert_allclose(plan, future_poses(episode, k), atol=1e-9)
        assert label == sample_label(episode, k, ego_front_m=3.5)
        for _ in range(world.cfg.keyframe_every):
            world.step(None)


def test_beta_one_visits_the_expert_recording(world):
    episode = record_episode(world, "highway", 3, keyframes=4, image_wh=None)
    ep = rollout(
        world, make_baseline("constant_velocity"), make_controller("pid"), "highway", 3, 1.0,
        np.random.default_rng(0), 4, (64, 36), 6.0,
    )  # fmt: skip
    assert ep.stats["policy_intervals"] == 0 and ep.stats["end"] == "length"
    assert [f.ego_pose for f in ep.episode.frames] == [f.ego_pose for f in episode.frames[:4]]
    assert all(set(f.images) and f.images["CAM_FRONT"].shape == (36, 64, 3) for f in ep.episode.frames)


def test_policy_rollout_stops_off_route_and_reads_back_with_expert_plans(world, tmp_path):
    """Constant velocity cannot take the junction's turn: the episode stops once off route, labels kept."""
    ep = rollout(
        world, make_baseline("constant_velocity"), make_controller("pid"), "intersection", 1234, 0.0,
        np.random.default_rng(0), 30, (64, 36), 6.0,
    )  # fmt: skip
    assert ep.stats["end"] == "off_route" and ep.stats["policy_intervals"] == ep.episode.keyframes < 30
    assert len(ep.labels) == len(ep.plans) == ep.episode.keyframes
    summary = write_onpolicy_dataset(tmp_path / "r1", [ep], (64, 36), 80.0)
    assert summary["samples"] == ep.episode.keyframes
    reader = PlanLabelledReader(tmp_path / "r1", "v1.0-embedded", split="train")
    plain = NuScenesReader(tmp_path / "r1", "v1.0-embedded", split="train")
    k = len(reader) - 1  # the last visited keyframe: no recorded future, a full expert plan
    sample = reader[k]
    np.testing.assert_allclose(sample.targets.trajectory.xy, ep.plans[k][:, :2], atol=1e-3)
    assert sample.targets.trajectory.mask.all() and not plain[k].targets.trajectory.mask.any()
    assert sample.targets.explanation == ep.labels[k]["explanation"]
    assert sample.targets.meta_action == ep.labels[k]["meta_action"]
    both = ConcatSamples([plain, reader])
    assert len(both) == 2 * len(reader)
    np.testing.assert_allclose(both.future(len(reader) + k).xy, sample.targets.trajectory.xy)
    dm = DriveDataModule(
        dataroot=str(tmp_path / "r1"), version="v1.0-embedded", val_split="",
        extra_train=[(str(tmp_path / "r1"), "v1.0-embedded", "train")],
    )  # fmt: skip
    dm.setup("fit")
    assert len(dm.train_set) == 2 * len(reader) and dm.train_set[len(reader) + k].targets.trajectory.mask.all()
    with pytest.raises(ValueError, match=r"extra_train\[0\]: got \('x', 'v'\), expected \(dataroot, version, split\)"):
        DriveDataModule(dataroot="x", extra_train=[("x", "v")])


def test_expert_plans_file_errors(tmp_path):
    with pytest.raises(ValueError, match="dataroot/version"):
        write_expert_plans(tmp_path, "v1.0-x", {})
    (tmp_path / "v1.0-x").mkdir()
    with pytest.raises(ValueError, match=r"plans\['tok'\]: got an array of shape \(2, 3\)"):
        write_expert_plans(tmp_path, "v1.0-x", {"tok": np.zeros((2, 3))})
    write_expert_plans(tmp_path, "v1.0-x", {"tok": np.ones((FUTURE_STEPS, 3))})
    assert read_expert_plans(tmp_path, "v1.0-x")["tok"].shape == (FUTURE_STEPS, 3)


def test_rollout_rejects_a_bad_beta(world):
    with pytest.raises(ValueError, match="beta: got 1.5"):
        rollout(world, make_baseline("constant_velocity"), make_controller("pid"), "highway", 1, 1.5,
                np.random.default_rng(0), 2, (64, 36), 6.0)  # fmt: skip
