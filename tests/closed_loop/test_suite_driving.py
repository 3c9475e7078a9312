"""drive_policy_on_suite scores a policy exactly as `drive-vla drive` does, and leaves torch's settings as it found them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tiny_models import TINY_MODEL_OVERRIDES

from drive_vla.cli.main import main
from drive_vla.suite_driving import drive_policy_on_suite, fixed_torch
from drive_vla.suites import load_suite

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny_vla(tmp_path_factory) -> Path:
    from drive_vla.config import load_config
    from drive_vla.model.config import ModelConfig
    from drive_vla.policy import DrivingPolicy

    cfg = load_config(ModelConfig, REPO / "configs" / "model" / "tiny.yaml", TINY_MODEL_OVERRIDES)
    return Path(DrivingPolicy.build(cfg, fit_texts=[]).save_pretrained(tmp_path_factory.mktemp("suite") / "tiny-vla"))


def test_fixed_torch_sets_threads_and_determinism_then_restores_them():
    before = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled())
    with fixed_torch(1):
        assert torch.get_num_threads() == 1 and torch.are_deterministic_algorithms_enabled()
    assert (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()) == before
    with pytest.raises(ValueError, match="threads: got 0, expected >= 1"), fixed_torch(0):
        pass
    assert (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()) == before


def test_suite_of_another_backend_is_refused(tiny_vla):
    suite = load_suite("select")
    suite.env = "carla"
    with pytest.raises(ValueError, match="only 'embedded' is driven here"):
        drive_policy_on_suite(tiny_vla, suite)


def test_scores_equal_the_drive_verb(tiny_vla, tmp_path):
    suite_yaml = tmp_path / "short.yaml"
    suite_yaml.write_text(
        "name: short\nenv: embedded\nmax_time_s: 4.0\nroutes:\n"
        "  - {scenario: intersection, seed: 810003}\n  - {scenario: highway, seed: 810001}\n"
    )
    argv = ["drive", "--policy", str(tiny_vla), "--suite", str(suite_yaml), "--out", str(tmp_path / "cli")]
    assert main([*argv, "--no-report", "--seed", "3", "--threads", "1", "--bootstrap-resamples", "100"]) == 0
    cli = json.loads((tmp_path / "cli" / "drive_report.json").read_text())["models"]["tiny-vla"]
    lib = drive_policy_on_suite(tiny_vla, load_suite(str(suite_yaml)), seed=3, threads=1)
    assert lib["driving_score"] == cli["driving_score"]
    assert lib["route_completion"] == cli["route_completion"]
    assert [r["driving_score"] for r in lib["routes"]] == [e["driving_score"] for e in cli["episodes"]]
    assert [r["done_reason"] for r in lib["routes"]] == [e["done_reason"] for e in cli["episodes"]]
    assert lib["seed"] == 3 and lib["threads"] == 1 and len(lib["routes"]) == 2


def test_drive_names_the_threads_flag(tiny_vla, tmp_path):
    with pytest.raises(ValueError, match="--threads: got 0, expected >= 1"):
        main(["drive", "--policy", str(tiny_vla), "--suite", "select", "--out", str(tmp_path), "--threads", "0"])
