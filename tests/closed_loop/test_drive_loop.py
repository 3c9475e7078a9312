"""The drive loop on the embedded world: full episodes, fault injection, scoring, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from drive_vla.baselines import make_baseline
from drive_vla.closed_loop import DriveLoopConfig, run_episode
from drive_vla.control import make_controller
from drive_vla.sim.env import EmbeddedEnv, ExpertControl, ExpertPlanner
from drive_vla.types import Plan, StepResult, Trajectory

SHORT = DriveLoopConfig(policy_hz=2.0, max_time_s=6.0, explain_every_s=0, save_frames_every_s=2.0, strip_every_s=2.0)


@pytest.fixture
def env():
    e = EmbeddedEnv(image_wh=(64, 36))
    yield e
    e.close()


def test_full_episode_constant_velocity_moves_and_records(env, tmp_path):
    result = run_episode(
        env, make_baseline("constant_velocity"), make_controller("pid"), "highway", 11, SHORT, tmp_path
    )
    s = result.summary
    assert s["distance_m"] > 20.0  # it drives, not stands
    assert s["planner_errors"] == 0
    assert s["policy_calls"] == 12  # 6 s at 2 Hz
    assert 0.0 < result.record.completion <= 1.0
    assert result.score["driving_score"] == pytest.approx(
        result.score["route_completion"] * result.score["infraction_penalty"]
    )
    lines = (tmp_path / "steps.jsonl").read_text().splitlines()
    assert len(lines) == 60 and "plan" in json.loads(lines[0])
    assert json.loads((tmp_path / "summary.json").read_text())["route_id"] == "highway-11"
    assert sorted(p.name for p in (tmp_path / "frames").glob("step_*.npz"))[:2] == ["step_00000.npz", "step_00020.npz"]


def test_expert_drives_without_collision(env, tmp_path):
    result = run_episode(env, ExpertPlanner(env), ExpertControl(), "intersection", 3, SHORT, tmp_path)
    assert result.summary["collisions"] == 0 and result.summary["distance_m"] > 10.0
    # lateral tracking: the backend's distance from the route's centre line, per step and summarised
    offsets = [json.loads(line)["off_route_m"] for line in (tmp_path / "steps.jsonl").read_text().splitlines()]
    track = result.summary["route_offset_m"]
    assert track["mean"] == pytest.approx(np.mean(offsets), abs=1e-3) and track["p90"] >= track["mean"]
    assert track["p90"] < 1.0  # the expert holds its lane


def test_route_offset_is_absent_where_the_backend_gives_none(env):
    class NoOffsetEnv(EmbeddedEnv):
        def step(self, control, observe=True):
            result = super().step(control, observe)
            result.info.pop("off_route_m", None)
            return result

    result = run_episode(
        NoOffsetEnv(image_wh=(64, 36)), make_baseline("constant_velocity"), make_controller("pid"), "highway", 1, SHORT
    )
    assert result.summary["route_offset_m"] is None


class FaultyPlanner:
    """Raises, returns NaN-free garbage, wrong types, by turns."""

    def __init__(self):
        self.calls = 0

    def reset(self):
        pass

    def predict_batch(self, observations):
        self.calls += 1
        mode = self.calls % 4
        if mode == 1:
            raise RuntimeError("injected planner fault")
        if mode == 2:
            return ["not a plan"]
        if mode == 3:
            return [Plan(Trajectory(np.zeros((3, 2), dtype=np.float32)))]  # wrong number of waypoints
        return [Plan(Trajectory(np.cumsum(np.full((6, 2), [5.0, 0.0], dtype=np.float32), axis=0)))]


def test_planner_faults_brake_and_carry_on(env, caplog):
    planner = FaultyPlanner()
    result = run_episode(env, planner, make_controller("pid"), "highway", 5, SHORT)
    assert planner.calls == 12
    assert result.summary["planner_errors"] == 9
    braked = [s for s in result.steps if "error" in s]
    assert braked and all(s["control"]["brake"] == 1.0 and s["control"]["throttle"] == 0.0 for s in braked)
    assert "injected planner fault" in caplog.text


class DroppingEnv(EmbeddedEnv):
    """Loses the camera data every other observation (a sensor fault)."""

    def step(self, control, observe=True):
        result = super().step(control, observe=observe)
        self._n = getattr(self, "_n", 0) + 1
        if observe and self._n % 2 == 0:
            return StepResult(None, result.done, result.info)
        return result


def test_bad_sensor_data_brakes_and_carries_on():
    env = DroppingEnv(image_wh=(64, 36))
    result = run_episode(env, make_baseline("constant_velocity"), make_controller("pid"), "merge", 2, SHORT)
    errors = [s["error"] for s in result.steps if "error" in s]
    assert errors and all("no observation" in e for e in errors)
    assert len(result.steps) == 60  # the loop ran to the end


class CrashingEnv(EmbeddedEnv):
    def step(self, control, observe=True):
        raise RuntimeError("simulator lost")


def test_backend_failure_fails_the_route_not_the_run():
    result = run_episode(
        CrashingEnv(image_wh=(64, 36)), make_baseline("constant_velocity"), make_controller("pid"), "highway", 1, SHORT
    )
    assert result.record.status == "failed" and result.score["driving_score"] == 0.0


def test_drive_cli_two_baselines(tmp_path, capsys):
    from drive_vla.cli.main import main

    suite = tmp_path / "suite.yaml"
    suite.write_text("name: t\nenv: embedded\nmax_time_s: 4.0\nroutes:\n  - {scenario: highway, seed: 3}\n")
    rc = main(
        [
            "drive",
            "--baseline",
            "expert",
            "--baseline",
            "constant_velocity",
            "--suite",
            str(suite),
            "--out",
            str(tmp_path / "out"),
            "--image-size",
            "64x36",
            "--no-report",
        ]
    )
    assert rc == 0
    report = json.loads((tmp_path / "out" / "drive_report.json").read_text())
    assert set(report["models"]) == {"expert", "constant_velocity"}
    assert all(row["route_offset_m"] >= 0.0 for row in report["table"])
    assert (tmp_path / "out" / "constant_velocity" / "highway-3" / "strip.png").is_file()
    assert "driving_score" in capsys.readouterr().out


def test_drive_cli_errors(tmp_path):
    from drive_vla.cli.main import main

    with pytest.raises(ValueError, match="suite"):
        main(["drive", "--baseline", "expert", "--suite", "nope", "--out", str(tmp_path)])
    with pytest.raises(ValueError, match="--baseline"):
        main(["drive", "--baseline", "teleport", "--suite", "smoke", "--out", str(tmp_path)])
    with pytest.raises(ValueError, match="at least one"):
        main(["drive", "--suite", "smoke", "--out", str(tmp_path)])
    bad = tmp_path / "pid.yaml"
    bad.write_text("turn_kp: fast\n")
    with pytest.raises(
        ValueError, match=r"--controller-config: config file .*pid\.yaml: turn_kp: got 'fast', expected a number"
    ):
        main(
            [
                "drive",
                "--baseline",
                "constant_velocity",
                "--suite",
                "smoke",
                "--out",
                str(tmp_path),
                "--controller-config",
                str(bad),
            ]
        )


def test_held_out_suites_never_generate_training_data():
    from drive_vla.sim.dataset import HELD_OUT_SEEDS, scene_plan, training_seed
    from drive_vla.suites import available_suites, load_suite

    assert training_seed(900_123) not in HELD_OUT_SEEDS and training_seed(5) == 5
    planned = {s for _, s in scene_plan(500, 0)}
    for name in available_suites():
        suite = load_suite(name.removeprefix("closed_loop_"))
        if suite.held_out and suite.env == "embedded":
            assert all(r.seed in HELD_OUT_SEEDS and r.seed not in planned for r in suite.routes)
