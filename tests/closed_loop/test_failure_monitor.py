"""The failure monitor in the drive loop: fallback on a jumping planner, second opinions, logs, faults."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from drive_vla.baselines import make_baseline
from drive_vla.closed_loop import DriveLoopConfig, run_episode
from drive_vla.control import make_controller
from drive_vla.monitor import MonitorConfig
from drive_vla.sim.env import EmbeddedEnv
from drive_vla.types import Plan, Trajectory

SHORT = DriveLoopConfig(
    policy_hz=2.0, max_time_s=6.0, explain_every_s=0, save_frames_every_s=0, strip_every_s=0, monitor=MonitorConfig()
)


@pytest.fixture
def env():
    e = EmbeddedEnv(image_wh=(64, 36))
    yield e
    e.close()


class JumpingPlanner:
    """Straight ahead at 12 m/s, every third call swerving 6 m left; answers second opinions when asked."""

    def __init__(self, with_second_opinion: bool = True) -> None:
        self.calls, self.asked = 0, []
        if not with_second_opinion:
            self.second_opinion = None

    def reset(self) -> None:
        self.calls = 0

    def predict_batch(self, observations):
        self.calls += 1
        xy = np.stack([np.arange(1, 7) * 6.0, np.zeros(6)], axis=1)
        if self.calls % 3 == 0:
            xy[:, 1] = np.linspace(1.0, 6.0, 6)
        return [Plan(Trajectory(xy.astype(np.float32))) for _ in observations]

    def second_opinion(self, obs, explain=True):
        self.asked.append(explain)
        xy = np.stack([np.arange(1, 7) * 2.0, np.zeros(6)], axis=1).astype(np.float32)
        return Plan(Trajectory(xy), text="Slow down. A jumpy plan." if explain else None)


def test_jumping_planner_triggers_a_logged_fallback(env, tmp_path):
    planner = JumpingPlanner()
    result = run_episode(env, planner, make_controller("pid"), "highway", 4, SHORT, tmp_path)
    steps = [json.loads(line) for line in (tmp_path / "steps.jsonl").read_text().splitlines()]
    records = {s["step"]: s["monitor"] for s in steps if "monitor" in s}
    assert len(records) == 12  # every planner frame at 2 Hz over 6 s
    fired = {k: r for k, r in records.items() if r["fired"]}
    assert fired and any("plan_jump" in r["fired"] for r in fired.values())
    first = fired[min(fired)]
    jump = next(c for c in first["checks"] if c["name"] == "plan_jump")
    assert jump["value"] > 4.0 and jump["threshold"] == 4.0
    assert first["fallback"]["started"] and first["fallback"]["speed_cap_mps"] == 5.0
    assert (
        first["second_opinion"]["text"] == "Slow down. A jumpy plan."
        and len(first["second_opinion"]["trajectory"]) == 6
    )
    assert True in planner.asked
    # Capped plans never go further than the planner asked, and some go less far (the car slows down).
    held = [
        (np.array(r["fallback"]["trajectory"]), np.array(steps[k]["plan"]["trajectory"]["xy"]))
        for k, r in records.items()
        if "fallback" in r
    ]
    assert all(np.hypot(*c[-1]) <= np.hypot(*p[-1]) + 1e-4 for c, p in held)
    assert any(np.hypot(*c[-1]) < np.hypot(*p[-1]) - 1.0 for c, p in held)
    # Frames of the fires are saved for explain --episode.
    assert (tmp_path / "frames" / f"step_{min(fired):05d}.npz").is_file()
    summary = result.summary["monitor"]
    assert summary["mode"] == "on" and summary["fires"] == len(fired) and summary["fallback_s"] > 0
    assert summary["fires_per_min"] == pytest.approx(len(fired) / 0.1)


def test_fallback_slows_the_car(env):
    base = run_episode(
        env, JumpingPlanner(), make_controller("pid"), "highway", 4, dataclasses.replace(SHORT, monitor=None)
    )
    watched = run_episode(env, JumpingPlanner(with_second_opinion=False), make_controller("pid"), "highway", 4, SHORT)
    assert "monitor" not in base.summary and "monitor" not in base.steps[0]
    assert watched.summary["monitor"]["second_opinions"] == 0  # no slow path: it only slows down
    assert watched.summary["distance_m"] < base.summary["distance_m"] - 5.0


class OneSurgePlanner:
    """Straight ahead at the car's own speed (constant velocity), except its third plan, which surges to 1.5x."""

    def __init__(self) -> None:
        self.calls, self.cv = 0, make_baseline("constant_velocity")

    def reset(self) -> None:
        self.calls = 0
        self.cv.reset()

    def predict_batch(self, observations):
        self.calls += 1
        plans = self.cv.predict_batch(observations)
        if self.calls != 3:
            return plans
        xy = np.array(plans[0].trajectory.xy) * np.array([1.5, 1.0])
        return [Plan(Trajectory(xy.astype(np.float32)))]


def test_the_fallback_does_not_keep_itself_going(env):
    """A plan the car did not follow (the fallback slowed it) is no baseline for the plan-jump check: one surge
    gives one hold of hold_s, after which the car speeds up again; comparing the next plans with the plan that
    was replaced would fire on the fallback's own braking and hold the car for the rest of the route."""
    cfg = dataclasses.replace(SHORT, max_time_s=10.0, monitor=MonitorConfig(plan_jump_m=2.0))
    result = run_episode(env, OneSurgePlanner(), make_controller("pid"), "highway", 4, cfg)
    records = [(s["time_s"], s["monitor"]) for s in result.steps if "monitor" in s]
    fired = [t for t, r in records if r["fired"]]
    assert fired and all("plan_jump" in r["fired"] for t, r in records if r["fired"])
    assert len(fired) <= 2  # the surge, and at most the return from it
    assert result.summary["monitor"]["fallback_s"] <= 2 * MonitorConfig().hold_s + 0.6
    assert not any("fallback" in r for t, r in records[-4:])  # the last 2 s drive the planner's own plans


def test_shadow_mode_logs_without_intervening(env):
    shadow = dataclasses.replace(SHORT, monitor=MonitorConfig(intervene=False))
    result = run_episode(env, JumpingPlanner(), make_controller("pid"), "highway", 4, shadow)
    records = [s["monitor"] for s in result.steps if "monitor" in s]
    assert any(r["fired"] for r in records) and not any("fallback" in r for r in records)
    assert result.summary["monitor"]["mode"] == "shadow" and result.summary["monitor"]["fallback_s"] == 0.0


class BrokenMapEnv(EmbeddedEnv):
    def drivable(self, points_ego, margin_m=0.0):
        raise RuntimeError("map lookup lost")


def test_monitor_fault_brakes_and_the_loop_carries_on(caplog):
    env = BrokenMapEnv(image_wh=(64, 36))
    result = run_episode(env, make_baseline("constant_velocity"), make_controller("pid"), "merge", 2, SHORT)
    assert len(result.steps) == 60  # ran to the end
    faulty = [s for s in result.steps if "monitor" in s]
    assert all("map lookup lost" in s["monitor"]["error"] for s in faulty)
    assert all(s["control"]["brake"] == 1.0 for s in faulty)
    assert result.summary["monitor"]["monitor_errors"] == 12 and "monitor failed" in caplog.text


def test_off_road_plan_fires_and_input_faults_are_checks(env):
    class OffRoad(JumpingPlanner):
        def predict_batch(self, observations):
            self.calls += 1
            if self.calls == 2:
                raise RuntimeError("injected")
            xy = np.stack([np.arange(1, 7) * 4.0, np.arange(1, 7) * 8.0], axis=1).astype(np.float32)  # 60 deg left
            return [Plan(Trajectory(xy))]

    result = run_episode(env, OffRoad(), make_controller("pid"), "highway", 4, SHORT)
    by_check = result.summary["monitor"]["by_check"]
    assert by_check["input_fault"] == 1 and by_check["off_drivable"] >= 1


def test_drivable_map_query(env):
    env.reset("highway", 4)
    on = env.drivable(np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 50.0], [0.0, -50.0]]))
    assert on.tolist() == [True, True, False, False]
    with pytest.raises(ValueError, match="points_ego"):
        env.drivable(np.zeros((3, 3)))


_spec = importlib.util.spec_from_file_location("model_fixtures", Path(__file__).parents[1] / "model" / "conftest.py")
fx = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fx)


def test_tiny_policy_second_opinion():
    from drive_vla.config import load_config
    from drive_vla.model.config import ModelConfig
    from drive_vla.policy import DrivingPolicy

    cfg = load_config(ModelConfig, fx.TINY_YAML, [*fx.TEST_OVERRIDES, "output_mode=head"])
    policy = DrivingPolicy.build(cfg)
    obs = fx.make_observation(np.random.default_rng(1))
    head = policy.predict(obs)
    second = policy.second_opinion(obs)
    assert second.text is not None and second.trajectory.xy.shape == (6, 2)
    assert not np.allclose(second.trajectory.xy, head.trajectory.xy)  # decoded tokens, not the head
    assert policy.second_opinion(obs, explain=False).text is None
    assert policy.model.cfg.output_mode == "head" and policy.plans_with_head


def test_head_tokens_cross_check_at_a_low_rate(env):
    class HeadPlanner(JumpingPlanner):
        plans_with_head = True

        def predict_batch(self, observations):
            xy = np.stack([np.arange(1, 7) * 6.0, np.zeros(6)], axis=1).astype(np.float32)
            return [Plan(Trajectory(xy))]

    planner = HeadPlanner()
    loop = dataclasses.replace(SHORT, monitor=MonitorConfig(cross_check_every_s=2.0))
    result = run_episode(env, planner, make_controller("pid"), "highway", 4, loop)
    cross = {
        s["step"]: c
        for s in result.steps
        if "monitor" in s
        for c in s["monitor"]["checks"]
        if c["name"] == "head_tokens"
    }
    # Every 2 s at 10 Hz steps, and also where another check fired (the fallback asks the slow path then).
    assert {0, 20, 40} <= set(cross)
    # The slow path plans 4 m/s against the head's 12 m/s: 24 m apart at 3 s, so it fires and is explained.
    assert all(c["fired"] and c["value"] == pytest.approx(24.0) for c in cross.values())
    assert planner.asked[:2] == [False, True]  # the cheap cross-check first, then the explained opinion


def test_drive_cli_monitor_report(tmp_path, capsys):
    from drive_vla.cli.main import main

    suite = tmp_path / "suite.yaml"
    suite.write_text("name: t\nenv: embedded\nmax_time_s: 3.0\nroutes:\n  - {scenario: highway, seed: 3}\n")
    args = ["drive", "--baseline", "constant_velocity", "--suite", str(suite), "--image-size", "64x36", "--no-report"]
    assert main([*args, "--out", str(tmp_path / "on"), "--monitor", "on", "--monitor-set", "hold_s=2"]) == 0
    assert "failure monitor on" in capsys.readouterr().out
    report = json.loads((tmp_path / "on" / "drive_report.json").read_text())
    model = report["models"]["constant_velocity"]
    assert report["monitor"] == "on" and report["monitor_config"]["hold_s"] == 2.0
    assert model["monitor"]["mode"] == "on" and model["episodes"][0]["monitor"]["driven_s"] == pytest.approx(3.0)
    row = report["table"][0]
    assert {"monitor_fires_per_min", "infractions_flagged", "infractions_missed"} <= set(row)
    with pytest.raises(ValueError, match="--monitor-set: .* --monitor is off"):
        main([*args, "--out", str(tmp_path / "x"), "--monitor-set", "hold_s=2"])
    with pytest.raises(SystemExit):
        main([*args, "--out", str(tmp_path / "x"), "--monitor", "maybe"])
