"""`drive-vla explain`: dataset samples and recorded frames, questions, --interactive over stdin, errors."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from tiny_models import TINY_MODEL_OVERRIDES

import drive_vla.cli.explain as explain_cli
from drive_vla import geometry
from drive_vla.cli.main import main
from drive_vla.episode_io import frame_path, save_observation
from drive_vla.types import CAMERA_NAMES, Command, Control, EgoState, Observation, Plan, Trajectory

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
DEFAULT_Q = "What are you doing and why?"


class StubPolicy:
    """Constant-velocity plan and an answer that repeats the question; records what it was given."""

    def __init__(self) -> None:
        self.questions: list[str | None] = []
        self.observations: list[Observation] = []
        self.resets = 0

    def reset(self) -> None:
        self.resets += 1

    def predict(self, obs: Observation) -> Plan:
        self.observations.append(obs)
        t = np.arange(1, 7, dtype=np.float32) * 0.5
        xy = np.stack([obs.ego.speed_mps * t, np.zeros(6, dtype=np.float32)], axis=1)
        return Plan(Trajectory(xy), Control(0.0, 0.25, 0.0), meta_action="keep speed, straight")

    def predict_batch(self, observations):
        return [self.predict(o) for o in observations]

    def explain(self, obs: Observation, question: str | None = None) -> str:
        self.questions.append(question)
        return f"answer #{len(self.questions)}: driving at {obs.ego.speed_mps:.1f} m/s."


def _observation(wh=(64, 36)) -> Observation:
    w, h = wh
    intr, extr = geometry.rig_calibration(w, h)
    rng = np.random.default_rng(0)
    return Observation(
        images={c: rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for c in CAMERA_NAMES},
        intrinsics=intr,
        extrinsics=extr,
        ego=EgoState(speed_mps=4.0, source="sim"),
        command=Command.LEFT,
        instruction="turn left at the next intersection",
        timestamp_s=1.5,
    )


@pytest.fixture
def stub(monkeypatch) -> StubPolicy:
    policy = StubPolicy()
    monkeypatch.setattr(explain_cli, "load_policy", lambda path: policy)
    return policy


@pytest.fixture
def episode(tmp_path) -> Path:
    ep = tmp_path / "episode"
    save_observation(frame_path(ep, 3), _observation())
    return ep


@pytest.fixture
def policy_dir(tmp_path) -> Path:
    d = tmp_path / "policy"
    d.mkdir()
    return d


def _explain(policy_dir: Path, *extra: str) -> int:
    return main(["explain", "--policy", str(policy_dir), *extra])


def test_recorded_frame_prints_plan_and_default_answer(stub, episode, policy_dir, capsys):
    assert _explain(policy_dir, "--episode", str(episode), "--step", "3") == 0
    out = capsys.readouterr().out
    assert f"episode {episode} step 3 (64x36 cameras)" in out
    assert "turn left at the next intersection | command: LEFT | speed 4.00 m/s" in out
    rows = [line.split() for line in out.splitlines() if line.startswith("   ") and line.split()[0] in ("0.5", "3.0")]
    assert rows == [["0.5", "2.00", "0.00", "0.0"], ["3.0", "12.00", "0.00", "0.0"]]
    assert "throttle 0.250" in out and "meta-action: keep speed, straight" in out
    assert f"Q: {DEFAULT_Q}\nA: answer #1: driving at 4.0 m/s." in out
    assert stub.questions == [None] and stub.resets == 1


def test_question_json_and_image_size(stub, episode, policy_dir, capsys):
    assert _explain(policy_dir, "--episode", str(episode), "--step", "3", "--question", "Why left?",
                    "--image-size", "32x18", "--json") == 0  # fmt: skip
    record = json.loads(capsys.readouterr().out)
    assert record["question"] == "Why left?" and record["answer"].startswith("answer #1")
    assert np.array(record["plan"]["trajectory"]["xy"]).shape == (6, 2)
    obs = stub.observations[0]
    assert obs.image_hw == (18, 32)
    assert np.allclose(obs.intrinsics["CAM_FRONT"], geometry.rig_calibration(32, 18)[0]["CAM_FRONT"], atol=1e-3)


def test_interactive_answers_until_quit(stub, episode, policy_dir, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO("Why so slow?\n\n  What is next?  \nquit\nnever asked\n"))
    assert _explain(policy_dir, "--episode", str(episode), "--step", "3", "--interactive") == 0
    out = capsys.readouterr().out
    assert stub.questions == [None, "Why so slow?", "What is next?"]
    assert "Q: Why so slow?\nA: answer #2" in out and "Q: What is next?\nA: answer #3" in out
    assert "never asked" not in out
    assert len(stub.observations) == 1  # one model, one plan, many questions


def test_interactive_stops_at_eof(stub, episode, policy_dir, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO("one\ntwo"))
    assert _explain(policy_dir, "--episode", str(episode), "--step", "3", "--interactive", "--question", "zero") == 0
    assert stub.questions == ["zero", "one", "two"]


def test_dataset_sample_with_figure(stub, policy_dir, tmp_path, capsys):
    sys.path.insert(0, str(FIXTURES))
    try:
        import nuscenes_factory
    finally:
        sys.path.remove(str(FIXTURES))
    root = tmp_path / "nuscenes"
    tokens = nuscenes_factory.write_synthetic_dataset(root, scenes=1, n_keyframes=8)
    token = tokens[0][2]
    fig_path = tmp_path / "fig.png"
    args = ["--dataroot", str(root), "--version", "v1.0-synthetic", "--sample", token, "--figure", str(fig_path)]
    assert _explain(policy_dir, *args) == 0
    out = capsys.readouterr().out
    assert f"v1.0-synthetic sample {token}" in out and f"figure: {fig_path}" in out
    img = cv2.imread(str(fig_path))
    assert img is not None and img.shape[1] == 3 * 400 + 2 * 225
    assert _explain(policy_dir, *args[:6], "--image-size", "48x27") == 0
    assert stub.observations[-1].image_hw == (27, 48)
    capsys.readouterr()
    assert _explain(policy_dir, *args[:5], "no-such-token") == 2
    assert "no-such-token" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "either --dataroot"),
        (["--episode", "EP", "--step", "3", "--sample", "x"], "either --dataroot"),
        (["--episode", "EP"], "both --episode and --step"),
        (["--dataroot", "D", "--sample", "x"], "missing --version"),
        (["--episode", "EP", "--step", "9"], "recorded steps nearby: [3] (1 in all)"),
        (["--episode", "NOEP", "--step", "0"], "no frames recorded there"),
        (["--episode", "EP", "--step", "3", "--image-size", "64by36"], "--image-size"),
        (["--episode", "EP", "--step", "3", "--question", "  "], "--question"),
        (["--episode", "EP", "--step", "3", "--json", "--interactive"], "do not go together"),
    ],
)
def test_argument_errors(stub, episode, policy_dir, capsys, extra, message):
    extra = [{"EP": str(episode), "NOEP": str(episode / "nothing")}.get(a, a) for a in extra]
    assert _explain(policy_dir, *extra) == 2
    assert message in capsys.readouterr().err
    assert stub.questions == []


def test_missing_policy_dir(tmp_path, capsys):
    assert _explain(tmp_path / "nope", "--episode", str(tmp_path), "--step", "0") == 2
    assert "--policy" in capsys.readouterr().err


@pytest.mark.slow
def test_real_tiny_policy(episode, tmp_path, capsys):
    """The real DrivingPolicy (tiny config, random weights) saved and loaded by the CLI, interactive."""
    from drive_vla.config import load_config
    from drive_vla.model.config import ModelConfig
    from drive_vla.policy import DrivingPolicy

    cfg = load_config(
        ModelConfig, Path(__file__).resolve().parents[2] / "configs/model/tiny.yaml", TINY_MODEL_OVERRIDES
    )
    # no data: tiny.yaml's "corpus" text tokenizer is fitted to the fixed prompt and label texts
    policy_dir = DrivingPolicy.build(cfg, fit_texts=[]).save_pretrained(tmp_path / "tiny")
    stdin = io.StringIO("Is the light red?\nquit\n")
    old, sys.stdin = sys.stdin, stdin
    try:
        rc = _explain(policy_dir, "--episode", str(episode), "--step", "3", "--interactive")
    finally:
        sys.stdin = old
    assert rc == 0
    out = capsys.readouterr().out
    rows = [
        line
        for line in out.splitlines()
        if line.startswith("   ") and line.split()[0] in {"0.5", "1.0", "1.5", "2.0", "2.5", "3.0"}
    ]
    assert len(rows) == 6
    assert f"Q: {DEFAULT_Q}\nA: " in out and "Q: Is the light red?\nA: " in out


class _SwervingPlanner:
    """12 m/s ahead, swerving 5 m left on every second call: the monitor's plan-jump check fires."""

    def __init__(self) -> None:
        self.calls = 0

    def reset(self) -> None:
        self.calls = 0

    def predict_batch(self, observations):
        self.calls += 1
        xy = np.stack([np.arange(1, 7) * 6.0, np.full(6, 5.0 * (self.calls % 2 == 0))], axis=1).astype(np.float32)
        return [Plan(Trajectory(xy)) for _ in observations]

    def second_opinion(self, obs, explain=True):
        xy = np.stack([np.arange(1, 7) * 2.0, np.zeros(6)], axis=1).astype(np.float32)
        return Plan(Trajectory(xy), text="Slow down and keep the lane." if explain else None)


def test_episode_step_shows_the_monitor_record(stub, policy_dir, tmp_path, capsys):
    from drive_vla.closed_loop import DriveLoopConfig, run_episode
    from drive_vla.control import make_controller
    from drive_vla.monitor import MonitorConfig
    from drive_vla.sim.env import EmbeddedEnv

    ep = tmp_path / "drive"
    cfg = DriveLoopConfig(max_time_s=2.0, explain_every_s=0, strip_every_s=0, monitor=MonitorConfig())
    run_episode(EmbeddedEnv(image_wh=(64, 36)), _SwervingPlanner(), make_controller("pid"), "highway", 4, cfg, ep)
    steps = [json.loads(line) for line in (ep / "steps.jsonl").read_text().splitlines()]
    k = next(s["step"] for s in steps if s.get("monitor", {}).get("fired"))
    assert _explain(policy_dir, "--episode", str(ep), "--step", str(k)) == 0
    out = capsys.readouterr().out
    assert "monitor: fired plan_jump (" in out and "m > 4.00 m)" in out
    assert "fallback: slow: path kept, speed capped (cap 5.0 m/s, 3.0 s left) - started here" in out
    assert "second opinion (decoded tokens" in out and "(12.0, 0.0)" in out
    assert "second opinion explanation: Slow down and keep the lane." in out
    assert _explain(policy_dir, "--episode", str(ep), "--step", "0", "--json") == 0
    record = json.loads(capsys.readouterr().out)
    assert record["monitor"]["fired"] == [] and {c["name"] for c in record["monitor"]["checks"]} >= {"plan_jump"}
    assert _explain(policy_dir, "--episode", str(ep), "--step", "0") == 0
    assert "monitor: no check fired (input_fault, plan_jump, off_drivable)" in capsys.readouterr().out


def test_episode_without_monitor_says_so(stub, episode, policy_dir, capsys):
    assert _explain(policy_dir, "--episode", str(episode), "--step", "3") == 0
    assert "monitor: no record for this step" in capsys.readouterr().out


def test_the_plan_text_names_the_speed_cap_from_the_lane_ahead():
    import numpy as np

    from drive_vla.cli.explain import plan_lines
    from drive_vla.types import Plan, Trajectory

    traj = Trajectory(xy=np.stack([np.arange(1, 7) * 2.0, np.zeros(6)], axis=1).astype(np.float32))
    assert not any("speed cap" in line for line in plan_lines(Plan(trajectory=traj)))
    lines = plan_lines(Plan(trajectory=traj, speed_cap_mps=3.31))
    assert "speed cap from the lane ahead (free-distance head): 3.3 m/s" in lines
