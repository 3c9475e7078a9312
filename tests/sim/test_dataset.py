"""Dataset maker: labels from the simulated future, QA from facts, nuScenes-format output, bad input."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from drive_vla.data.labels import command_from_trajectory, meta_action
from drive_vla.geometry import global_poses_to_local
from drive_vla.sim.config import CameraConfig, DatasetConfig, WorldConfig, teacher_world
from drive_vla.sim.dataset import (
    future_poses,
    keyframe_label,
    make_embedded,
    perturbed,
    record_episode,
    sample_label,
    scene_plan,
    split_scenes,
)
from drive_vla.sim.embedded import EmbeddedWorld
from drive_vla.sim.expert import ExpertDecision
from drive_vla.sim.qa import build_qa
from drive_vla.sim.world import Agent
from drive_vla.types import FUTURE_STEPS, Control


def test_label_futures_are_the_simulated_poses_in_the_ego_frame(world):
    episode = record_episode(world, "intersection", 5, keyframes=4, image_wh=None)
    log = world.pose_log()  # every simulated step
    for k in range(episode.keyframes):
        t = episode.frames[k].time_s
        rows = [int(np.argmin(np.abs(log[:, 0] - (t + 0.5 * j)))) for j in range(FUTURE_STEPS + 1)]
        assert log[rows, 0] == pytest.approx(t + 0.5 * np.arange(FUTURE_STEPS + 1))
        expected = global_poses_to_local(log[rows[1:], 1:], log[rows[0], 1:])
        np.testing.assert_allclose(future_poses(episode, k), expected, atol=1e-9)
        label = sample_label(episode, k, ego_front_m=3.5)
        assert label["command"] == command_from_trajectory(expected[:, :2]).name
        assert label["meta_action"] == meta_action(episode.frames[k].ego.speed_mps, expected[:, :2])
        assert label["explanation"] == episode.frames[k].decision.explanation
        assert label["control"]["throttle"] == episode.frames[k].decision.control.throttle


def _agent(vid, x, y, speed=5.0, category="vehicle.car"):
    return Agent(
        vid, category, np.array([x, y, 0.8]), np.array([4.5, 1.9, 1.6]), 0.0, np.array([speed, 0.0]), (1, 2, 3)
    )


def test_qa_answers_come_from_the_agents():
    agents = [
        _agent("a", 10.0, 0.0),
        _agent("b", 25.0, 3.5),
        _agent("c", -8.0, 0.0),
        _agent("d", 45.0, 0.0),
        _agent("e", 6.0, -3.0, 0.0, "vehicle.truck"),
    ]
    futures = {
        a.instance_id: [_agent(a.instance_id, a.xyz[0] + 2.5 * j, a.xyz[1]) for j in range(1, 7)] for a in agents
    }
    decision = ExpertDecision(
        "following",
        "The ego car follows the car 6 m ahead, which drives at 5 m/s, keeping a safe gap.",
        Control(0.0, 0.2, 0.0),
        0.1,
        10.0,
        "a",
        6.0,
        5.0,
        ahead_id="a",
        ahead_distance_m=6.0,
        ahead_speed_mps=5.0,
    )
    qa = build_qa((0.0, 0.0, 0.0), 6.0, agents, futures, decision, "keep speed, straight", ego_front_m=3.5)
    q = {p["Q"]: p["A"] for kind in qa.values() for p in kind}
    assert (
        q["How many vehicles are in front of the ego car within 30 m?"]
        == "There are 3 vehicles in front of the ego car within 30 m."
    )
    assert q["What is the closest object ahead of the ego car on its path?"] == "A car 6 m ahead, driving at 5 m/s."
    close = "A truck to the front-right at 7 m; a car behind at 8 m; a car ahead at 10 m."
    assert q["What objects are within 15 m of the ego car, and where?"] == close
    assert q["What will the car 10 m ahead do in the next 3 seconds?"] == "It will keep its speed and go straight."
    assert q["What should the ego car do?"].startswith("Keep speed and go straight. The ego car follows")
    assert q["Is it safe for the ego car to accelerate now?"].startswith("No.")
    assert set(qa) == {"perception", "prediction", "planning", "behavior"}


def test_make_embedded_writes_a_readable_dataset(tmp_path):
    cfg = DatasetConfig(keyframes_per_scene=4, world=WorldConfig(camera=CameraConfig(width=64, height=36)))
    calls = []
    summary = make_embedded(
        tmp_path / "emb",
        2,
        seed=3,
        image_wh=(64, 36),
        scenario_types=["highway", "intersection"],
        config=cfg,
        progress=lambda done, total: calls.append((done, total)),
    )
    assert summary["samples"] == 8 and summary["splits"] == {"train": 1, "val": 1} and calls == [(1, 2), (2, 2)]
    assert sorted(summary["scenarios"]) == ["highway", "intersection"]
    version = tmp_path / "emb" / "v1.0-embedded"
    labels = json.loads((version / "drive_vla_labels.json").read_text())
    frames = [f for scene in labels.values() for f in scene["key_frames"].values()]
    assert len(frames) == 8 and all(
        f["command"] in ("LEFT", "RIGHT", "STRAIGHT") and f["QA"]["planning"] for f in frames
    )
    splits = json.loads((version / "splits.json").read_text())
    assert sorted(splits["train"] + splits["val"]) == ["scene-0001", "scene-0002"]

    from drive_vla.data.reader import NuScenesReader

    reader = NuScenesReader(tmp_path / "emb", "v1.0-embedded")
    assert len(reader) == 8
    # The reader's ground truth (from the written ego poses) matches the simulation's poses.
    (scenario, seed), world = scene_plan(2, 3, ["highway", "intersection"])[0], None
    from drive_vla.sim.embedded import EmbeddedWorld

    world = EmbeddedWorld(cfg.world)
    episode = record_episode(world, scenario, seed, 4, None)
    i = reader.tokens.index(
        next(
            t
            for t in reader.tokens
            if reader.get(t).meta.scene == "scene-0001" and reader.get(t).meta.index_in_scene == 0
        )
    )
    traj = reader.future(i)
    assert traj.mask[:3].all() and not traj.mask[3:].any()  # 4 keyframes: three future ones are written
    np.testing.assert_allclose(traj.xy[:3], future_poses(episode, 0)[:3, :2], atol=1e-3)
    # The route target the world gave at that keyframe reaches the sample's observation.
    np.testing.assert_allclose(
        reader.get(reader.tokens[i]).observation.route_target, episode.frames[0].route_target, atol=1e-3
    )
    # So does the road's speed limit.
    limit = reader.get(reader.tokens[i]).observation.speed_limit_mps
    assert limit is not None and limit == pytest.approx(episode.frames[0].speed_limit_mps, abs=1e-3)
    # And the distance to the next junction.
    junction = reader.get(reader.tokens[i]).observation.junction_m
    assert junction is not None and junction == pytest.approx(episode.frames[0].junction_m, abs=1e-3)


def test_scene_plan_is_balanced_and_seeded():
    plan = scene_plan(8, 11)
    assert plan == scene_plan(8, 11) and plan != scene_plan(8, 12)
    assert sorted(s for s, _ in plan) == sorted(["highway", "intersection", "merge", "roundabout"] * 2)
    split = split_scenes([f"s{i}" for i in range(10)], 0, 0.2)
    assert len(split["val"]) == 2 and len(split["train"]) == 8 and not set(split["val"]) & set(split["train"])


def test_make_embedded_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="scenes: got 0"):
        make_embedded(tmp_path / "a", 0, 0)
    with pytest.raises(ValueError, match=r"image_wh\.width: got 0"):
        make_embedded(tmp_path / "b", 1, 0, image_wh=(0, 36))
    with pytest.raises(ValueError, match=r"scenario_types: got 'city'.*'highway'"):
        make_embedded(tmp_path / "c", 1, 0, scenario_types=["city"])
    with pytest.raises(ValueError, match="workers: got 0"):
        make_embedded(tmp_path / "d", 1, 0, workers=0)
    with pytest.raises(ValueError, match="dataset.keyframes_per_scene"):
        DatasetConfig(keyframes_per_scene=0)


@pytest.mark.slow
def test_workers_write_the_same_dataset(tmp_path):
    cfg = DatasetConfig(keyframes_per_scene=3, world=WorldConfig(camera=CameraConfig(width=32, height=18)))
    out = {}
    for workers in (1, 2):
        root = tmp_path / f"w{workers}"
        make_embedded(root, 2, seed=9, image_wh=(32, 18), workers=workers, config=cfg)
        version = root / "v1.0-embedded"
        out[workers] = [json.loads((version / name).read_text()) for name in ("ego_pose.json", "drive_vla_labels.json")]
    assert out[1] == out[2]


def test_noise_injection_moves_the_ego_but_keeps_the_expert_labels(world):
    """DART-style perturbation: executed control is noisy, the recorded decision stays the expert's."""
    clean = record_episode(world, "highway", 11, keyframes=6, image_wh=None)
    noisy = record_episode(world, "highway", 11, keyframes=6, image_wh=None, perturb=(1.0, 0.1, 0.3))
    again = record_episode(world, "highway", 11, keyframes=6, image_wh=None, perturb=(1.0, 0.1, 0.3))
    assert clean.frames[0].ego_pose == noisy.frames[0].ego_pose
    lateral = [abs(a.ego_pose[1] - b.ego_pose[1]) for a, b in zip(clean.frames, noisy.frames)]
    assert max(lateral) > 0.05  # the perturbation moved the ego off the expert's line
    assert [f.ego_pose for f in noisy.frames] == [f.ego_pose for f in again.frames]  # seeded
    for f in noisy.frames[: noisy.keyframes]:
        assert f.decision is not None and -1.0 <= f.decision.control.steer <= 1.0
    c = perturbed(Control(steer=0.95, throttle=0.5, brake=0.0), 0.2, -0.3)
    assert (c.steer, c.throttle, c.brake) == (1.0, 0.0, 0.3)
    c = perturbed(Control(steer=0.0, throttle=0.0, brake=0.5), -0.1, 0.2)
    assert (c.steer, c.throttle) == (-0.1, 0.0) and c.brake == pytest.approx(0.3)


def test_shared_expert_rollouts_give_the_labels_of_a_fresh_copy_per_keyframe():
    """ExpertFutures reuses one copy of the world while it drives as the expert; every keyframe's future
    (ego poses and agents) equals the one a fresh deep copy at that keyframe drives."""
    world = EmbeddedWorld(teacher_world())
    shared = record_episode(world, "intersection", 5, 16, None, perturb=(0.3, 0.15, 0.3), expert_futures=True)
    again = record_episode(
        world, "intersection", 5, 16, None, perturb=(0.3, 0.15, 0.3), expert_futures=True, share_futures=False
    )
    for a, b in zip(shared.frames[: shared.keyframes], again.frames[: again.keyframes]):
        assert [f.ego_pose for f in a.expert_future] == [f.ego_pose for f in b.expert_future]
        assert [[x.xyz.tolist() for x in f.agents] for f in a.expert_future] == [
            [x.xyz.tolist() for x in f.agents] for f in b.expert_future
        ]


def test_noisy_keyframes_are_labelled_with_the_experts_own_plan(world):
    """With expert futures, a noisy scene's label is what the expert drives from that state, not later noise."""
    noisy = record_episode(world, "highway", 11, 4, None, perturb=(1.0, 0.15, 0.3), expert_futures=True)
    clean = record_episode(world, "highway", 11, 4, None)
    for k in range(noisy.keyframes):
        label, plan = keyframe_label(noisy, k, ego_front_m=3.5)
        assert plan is not None and plan.shape == (FUTURE_STEPS, 3)
        # the plan is the expert's counterfactual future, not the recorded (perturbed) one
        np.testing.assert_allclose(
            plan, future_poses(replace(noisy, frames=[noisy.frames[k], *noisy.frames[k].expert_future], keyframes=1), 0)
        )
        assert label["command"] == command_from_trajectory(plan[:, :2]).name
    assert not np.allclose(
        keyframe_label(noisy, 0, 3.5)[1], future_poses(noisy, 0)
    )  # the noise moved the recorded future
    # from the same start state the expert's counterfactual future is the clean expert run
    np.testing.assert_allclose(keyframe_label(noisy, 0, 3.5)[1], future_poses(clean, 0), atol=1e-9)
    assert keyframe_label(clean, 0, 3.5)[1] is None  # no expert futures: the recorded future is the label


def test_make_embedded_writes_expert_plans_for_noisy_training_scenes(tmp_path):
    from drive_vla.data.expert_plans import PlanLabelledReader, read_expert_plans

    world_cfg = WorldConfig(camera=CameraConfig(width=32, height=18))
    cfg = DatasetConfig(keyframes_per_scene=3, perturb_prob=1.0, perturb_steer=0.15, world=world_cfg)
    summary = make_embedded(tmp_path / "emb", 2, seed=3, image_wh=(32, 18), config=cfg)
    plans = read_expert_plans(tmp_path / "emb", "v1.0-embedded")
    splits = json.loads((tmp_path / "emb" / "v1.0-embedded" / "splits.json").read_text())
    reader = PlanLabelledReader(tmp_path / "emb", "v1.0-embedded")
    train = {t for t in reader.tokens if reader.get(t).meta.scene in splits["train"]}
    assert set(plans) == train and summary["expert_plans"] == 3  # validation scenes stay clean expert driving
    for token in train:
        np.testing.assert_allclose(reader.future(reader.tokens.index(token)).xy, plans[token][:, :2], atol=1e-3)
    off = make_embedded(tmp_path / "off", 2, seed=3, image_wh=(32, 18), config=replace(cfg, expert_plan_labels=False))
    assert off["expert_plans"] == 0 and read_expert_plans(tmp_path / "off", "v1.0-embedded") == {}
