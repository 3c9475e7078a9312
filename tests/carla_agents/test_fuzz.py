"""The sensor-fault campaign through the leaderboard agent (a seeded sample of `drive-vla bench robustness`)."""

from __future__ import annotations

import argparse

import pytest

from carla_agents import fuzz


def test_a_seeded_campaign_never_crashes_always_brakes_on_faults_and_recovers():
    result = fuzz.run_campaign(150, seed=0)
    assert result.cases == 150 and set(result.per_fault) == set(fuzz.ALL_FAULTS)
    assert (result.crashes, result.brake_failures, result.unnamed_faults, result.drive_failures) == (0, 0, 0, 0), (
        result.examples
    )
    assert 1 <= result.recovery_frames_max <= 5  # 0.25 s at the leaderboard's 20 Hz


def test_the_campaign_counts_what_a_broken_agent_does(monkeypatch):
    """A campaign that cannot fail proves nothing: an agent that lets errors escape is counted as crashing."""
    from carla_agents.leaderboard_agent import DriveVLAAgent

    original = DriveVLAAgent.run_step

    def leaky(self, input_data, timestamp):
        if "SPEED" not in input_data or not isinstance(input_data["SPEED"][1].get("speed"), float):
            raise RuntimeError("escaped")
        return original(self, input_data, timestamp)

    monkeypatch.setattr(DriveVLAAgent, "run_step", leaky)
    result = fuzz.run_campaign(60, seed=1)
    assert result.crashes > 0 and any("escaped" in e for e in result.examples)


def test_bench_verb_refuses_zero_cases():
    from drive_vla.cli import bench_robustness as robustness

    parser = argparse.ArgumentParser()
    robustness.add_arguments(parser)
    with pytest.raises(ValueError, match="--cases: got 0"):
        robustness.run(parser.parse_args(["--cases", "0"]))
    with pytest.raises(ValueError, match="--requests-per-operation: got 0"):
        robustness.run(parser.parse_args(["--requests-per-operation", "0"]))
