"""The bounded locust load test of POST /plan (a short run of what `drive-vla bench robustness` measures)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from drive_vla.baselines.constant_velocity import ConstantVelocityPlanner
from drive_vla.model.bench import synthetic_observation
from drive_vla.serve.load import run_load_test

# never import locust here: it patches the standard library with gevent; the test runs it as a subprocess
pytestmark = pytest.mark.skipif(importlib.util.find_spec("locust") is None, reason="locust is a dev extra")


def test_a_short_load_test_stops_by_itself_and_reports_latency():
    obs = synthetic_observation(np.random.default_rng(0), (36, 64))
    out = run_load_test(ConstantVelocityPlanner(), obs, users=2, seconds=2)
    assert out["requests"] > 0 and out["failures"] == 0 and out["busy_503"] == 0
    assert 0 < out["p50_ms"] <= out["p99_ms"] and out["throughput_rps"] > 0


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="users/seconds: got 0/5"):
        run_load_test(ConstantVelocityPlanner(), synthetic_observation(np.random.default_rng(0), (36, 64)), 0, 5)
