"""`drive-vla train` killed with SIGKILL at a random step in a subprocess, then resumed: it loses at most one
checkpoint interval, never loads a half-written checkpoint, and ends with an uninterrupted run's weights
(the campaign `drive-vla bench robustness --kills N` runs, with one kill)."""

from __future__ import annotations

import time

import pytest

from drive_vla.training.kill_campaign import EVERY, STEPS, run_kill_campaign


@pytest.mark.slow
def test_sigkill_at_a_random_step_then_resume_matches_an_uninterrupted_run(tmp_path):
    out = run_kill_campaign(tmp_path, kills=1, seed=int(time.time()))  # a new random step every run
    run = out["runs"][0]
    assert out["resumed"] == 1 and run["final_step"] == STEPS, run
    assert run["checkpoint"] >= run["kill_at"] - EVERY and out["steps_lost_at_most"] < EVERY
    assert out["max_weight_diff"] < 1e-5, f"killed with checkpoint {run['checkpoint']}: {out['max_weight_diff']}"
    assert not list((tmp_path / "killed0" / "checkpoints").glob("*.tmp"))  # --resume removed a half-written one


def test_a_campaign_needs_a_kill(tmp_path):
    with pytest.raises(ValueError, match="kills: got 0"):
        run_kill_campaign(tmp_path, kills=0)
