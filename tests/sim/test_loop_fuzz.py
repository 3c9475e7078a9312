"""Observation faults through the shared drive loop with the embedded backend (a seeded sample of
`drive-vla bench robustness --loop-cases`)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from drive_vla.sim import loop_fuzz


def test_a_seeded_campaign_never_crashes_brakes_on_refused_observations_and_recovers(caplog):
    with caplog.at_level(logging.ERROR):  # every refused observation logs a warning: count, not print
        result = loop_fuzz.run_loop_campaign(80, seed=0)
    assert result.cases == 80 and len(result.per_fault) >= 10
    failures = (result.crashes, result.brake_failures, result.unnamed_faults, result.refusal_failures)
    assert failures + (result.recovery_failures,) == (0, 0, 0, 0, 0), result.examples
    assert result.recovery_steps_max == 5  # the next planner frame (2 Hz at 10 Hz steps)


@pytest.mark.parametrize("fault", sorted(loop_fuzz.ALL_FAULTS))
def test_each_fault_is_refused_naming_its_field_or_passed_through(world, fault):
    world.reset("highway", 3)
    obs, error = loop_fuzz.faulty_observation(world.observation(), fault, np.random.default_rng(0))
    if fault in loop_fuzz.REFUSED:
        assert obs is None and loop_fuzz.REFUSED[fault][1] in error
    else:
        assert error is None and obs is not None


def test_the_check_counts_a_loop_that_does_not_brake():
    """A campaign that cannot fail proves nothing: steps that keep the throttle on a refused frame count."""

    class Log:
        log = [(None, None), ("NaN/inf speed", "ego.speed_mps: got nan"), (None, None)]

    steps = [{"control": {"brake": 0.0, "throttle": 0.3}, "plan": {}} for _ in range(20)]
    steps[10]["error"] = "no observation (ego.speed_mps: got nan)"
    result = loop_fuzz.LoopCampaignResult()
    loop_fuzz.check_episode(Log(), steps, 5, result)
    assert result.cases == 1 and result.brake_failures == 1 and result.unnamed_faults == 0
