"""The perception stage: a free-distance head with its own backbone, trained alone on a driving policy."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from drive_vla.config import ConfigError
from drive_vla.training.config import load_train_config
from drive_vla.training.perception import FrontFrames, free_space_metrics

RECIPE = "configs/train/perception_free_space.yaml"


@pytest.fixture(scope="module")
def obstacle_data(tmp_path_factory):
    """Two intersection scenes and their twins with a car standing ahead, 6 keyframes each, at the tiny model's size."""
    from drive_vla.sim.config import CameraConfig, DatasetConfig, WorldConfig
    from drive_vla.sim.dataset import make_embedded

    root = tmp_path_factory.mktemp("perception") / "emb"
    world = WorldConfig(camera=CameraConfig(width=64, height=36))
    cfg = DatasetConfig(
        keyframes_per_scene=6, obstacle_scene_fraction=1.0, obstacle_gap_m=(4.0, 20.0), val_fraction=0.0, world=world
    )
    make_embedded(root, 2, seed=4, image_wh=(64, 36), scenario_types=["intersection"], config=cfg)
    return root


@pytest.fixture(scope="module")
def head_policy_dir(tmp_path_factory, tiny_model_config, tiny_samples):
    """A tiny exported policy that plans with its planner head along the route (what the cap needs)."""
    import dataclasses

    from drive_vla.data.datamodule import SampleDataset
    from drive_vla.policy import DrivingPolicy

    cfg = dataclasses.replace(
        tiny_model_config,
        output_mode="head",
        route_target=True,
        lm=dataclasses.replace(tiny_model_config.lm, text_tokenizer="corpus"),
    )
    out = tmp_path_factory.mktemp("head_policy") / "policy"
    policy = DrivingPolicy.build(cfg, [s.targets.trajectory for s in tiny_samples], SampleDataset(tiny_samples).texts())
    policy.save_pretrained(out)
    return out


def test_the_stage_needs_a_policy_and_a_head_of_its_own():
    with pytest.raises(ConfigError, match="stage"):
        load_train_config(RECIPE)  # no init_from
    with pytest.raises(ConfigError, match="perception.free_space"):
        load_train_config(RECIPE, ["init_from=somewhere", "perception.free_space.source=hidden"])
    cfg = load_train_config(RECIPE, ["init_from=somewhere"])
    assert cfg.perception.free_space.source == "own" and cfg.perception.free_space.cap_speed


def test_metrics_count_near_cars_read_as_near_and_clear_lanes_read_as_near():
    label = np.array([5.0, 10.0, 15.0, 50.0, 50.0, 30.0])
    pred = np.array([8.0, 40.0, 12.0, 50.0, 10.0, 30.0])
    m = free_space_metrics(pred, label, 50.0)
    assert m["near_frames"] == 3
    assert m["near_read_pct"] == pytest.approx(200.0 / 3)  # 8 and 12 read below 30 m, 40 does not
    assert m["false_near_pct"] == pytest.approx(50.0)  # one of the two clear lanes read at 10 m
    assert m["mae_m"] == pytest.approx((3 + 30 + 3 + 0 + 40 + 0) / 6)
    none = free_space_metrics(np.array([50.0]), np.array([50.0]), 50.0)
    assert none["near_frames"] == 0 and none["near_read_pct"] is None and none["near_mae_m"] is None


def test_the_stage_trains_the_head_alone_and_the_policy_caps_its_plans(obstacle_data, head_policy_dir, tmp_path):
    from drive_vla.cli.main import main
    from drive_vla.policy import DrivingPolicy
    from drive_vla.sim.env import EmbeddedEnv

    out = tmp_path / "run"
    rc = main([
        "train", "--config", RECIPE, "--out", str(out),
        "--set", f"init_from={head_policy_dir}", "--set", f"data.dataroot={obstacle_data}",
        "--set", "data.val_split=", "--set", "data.batch_size=8", "--set", "trainer.max_epochs=3",
        "--set", "logging.progress_bar=false",
    ])  # fmt: skip
    assert rc == 0
    metrics = json.loads((out / "perception_metrics.json").read_text())
    assert metrics["frames"]["train"] == 24  # 2 scenes and their 2 twins, 6 keyframes each
    assert len(metrics["epochs"]) == 3 and all(np.isfinite(e["train_loss"]) for e in metrics["epochs"])

    before = DrivingPolicy.from_pretrained(head_policy_dir)
    after = DrivingPolicy.from_pretrained(out / "policy")
    assert after.config.free_space.source == "own" and after.config.free_space.cap_speed
    assert before.config.free_space.enabled is False
    kept = before.model.state_dict()
    for name, value in after.model.state_dict().items():
        if not name.startswith("free_head."):
            torch.testing.assert_close(value, kept[name], msg=name)  # the driving weights are untouched

    env = EmbeddedEnv(image_wh=(64, 36))
    obs = env.reset("highway", 11)
    plan = after.predict(obs)
    assert np.all(np.isfinite(plan.trajectory.xy))
    assert len(after.model.last_speed_cap) == 1 and np.isfinite(after.model.last_speed_cap[0])
    assert plan.speed_cap_mps == pytest.approx(after.model.last_speed_cap[0])  # recorded with the plan
    assert plan.to_dict()["speed_cap_mps"] == plan.speed_cap_mps
    assert before.predict(obs).speed_cap_mps is None


def test_the_head_learns_the_distance_to_the_car(obstacle_data, head_policy_dir):
    from drive_vla.data.expert_plans import PlanLabelledReader
    from drive_vla.policy import DrivingPolicy
    from drive_vla.training.perception import attach_free_head, fit_free_head, front_frames, predict

    policy = DrivingPolicy.from_pretrained(head_policy_dir)
    cfg = load_train_config(RECIPE, ["init_from=x"]).perception.free_space
    frames = front_frames(PlanLabelledReader(obstacle_data, "v1.0-embedded", image_hw=(36, 64)), cfg)
    label = frames.label.numpy()
    assert (label < 25).sum() >= 6 and (label == 50).sum() >= 4  # cars standing ahead, and clear lanes
    attach_free_head(policy, cfg)
    fit_free_head(policy, frames, None, epochs=30, batch_size=8, lr=3e-3, weight_decay=0.0, seed=0, progress=False)
    error = np.abs(predict(policy, frames) - label).mean()
    assert error < 0.5 * np.abs(label - label.mean()).mean()


def test_bad_inputs_are_refused_before_training(obstacle_data, tiny_policy_dir, head_policy_dir, tmp_path, capsys):
    from drive_vla.cli.main import main

    rc = main([
        "train", "--config", RECIPE, "--out", str(tmp_path / "run"),
        "--set", f"init_from={tiny_policy_dir}", "--set", f"data.dataroot={obstacle_data}",
    ])  # fmt: skip
    assert rc == 2
    argv = ["train", "--config", RECIPE, "--out", str(tmp_path / "run2"), "--set", f"data.dataroot={obstacle_data}"]
    assert main([*argv, "--set", f"init_from={tmp_path / 'nowhere'}"]) == 2
    assert "init_from" in capsys.readouterr().err
    assert (
        main([*argv, "--set", f"init_from={head_policy_dir}", "--set", "perception.free_space.backbone=lcnet_9"]) == 2
    )
    assert "perception.free_space.backbone" in capsys.readouterr().err


def test_mirrored_frames_keep_their_label():
    from drive_vla.training.perception import head_inputs

    class _Vision:
        def preprocess(self, images):
            return images[:, 0].float()

    policy = type("P", (), {"model": type("M", (), {"vision": _Vision()})()})()
    images = torch.arange(2 * 3 * 2 * 4, dtype=torch.uint8).reshape(2, 3, 2, 4)
    frames = FrontFrames(images, torch.tensor([[[10.0, 1.0], [20.0, 2.0]]] * 2), torch.tensor([5.0, 50.0]))
    rng = torch.Generator().manual_seed(0)
    x, route = head_inputs(policy, frames, torch.tensor([0, 1]), flip=True, rng=rng)
    for i in range(2):
        mirrored = bool(route[i, 0, 1] < 0)
        expect = images[i].flip(-1) if mirrored else images[i]
        torch.testing.assert_close(x[i], expect.float())
        assert abs(float(route[i, 1, 1])) == 2.0
