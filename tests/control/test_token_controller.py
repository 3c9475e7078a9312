"""TokenController: executes decoded controls under the same limits, falls back to PID without them."""

from __future__ import annotations

import numpy as np
import pytest

from drive_vla.control import Controller, PIDController, PIDControllerConfig, TokenController, make_controller
from drive_vla.types import Control, Plan

DT = 0.05
NO_RATE_LIMITS = PIDControllerConfig(max_steer_rate_per_s=None, max_throttle_rise_per_s=None)


def _with_controls(plan: Plan, control: Control) -> Plan:
    return Plan(plan.trajectory, controls=control)


def test_executes_decoded_controls(kit):
    ctrl = TokenController(NO_RATE_LIMITS)
    out = ctrl.step(_with_controls(kit.straight_plan(3.0), Control(steer=0.3, throttle=0.5)), kit.ego(3.0), DT)
    assert (out.steer, out.throttle, out.brake) == pytest.approx((0.3, 0.5, 0.0))
    assert ctrl.debug["source"] == "tokens"


def test_token_controls_obey_actuator_and_rate_limits(kit):
    cfg = PIDControllerConfig(max_throttle=0.6, max_steer_rate_per_s=1.0, max_throttle_rise_per_s=None)
    ctrl = TokenController(cfg)
    plan = _with_controls(kit.straight_plan(3.0), Control(steer=-1.0, throttle=1.0))
    outs = [ctrl.step(plan, kit.ego(3.0), DT) for _ in range(30)]
    assert all(o.throttle == pytest.approx(0.6) for o in outs)
    assert np.abs(np.diff([0.0] + [o.steer for o in outs])).max() <= 1.0 * DT + 1e-9
    assert outs[-1].steer == pytest.approx(-1.0)


def test_brake_token_zeroes_throttle_and_small_brake_is_noise(kit):
    ctrl = TokenController(NO_RATE_LIMITS)
    out = ctrl.step(_with_controls(kit.straight_plan(3.0), Control(throttle=0.4, brake=0.7)), kit.ego(3.0), DT)
    assert (out.throttle, out.brake) == (0.0, pytest.approx(0.7))
    out = ctrl.step(_with_controls(kit.straight_plan(3.0), Control(throttle=0.4, brake=0.01)), kit.ego(3.0), DT)
    assert (out.throttle, out.brake) == (pytest.approx(0.4), 0.0)


def test_falls_back_to_pid_without_controls(kit):
    tokens, pid = TokenController(), PIDController()
    plan = kit.arc_plan(5.0, radius_m=15.0)
    for _ in range(10):
        a = tokens.step(plan, kit.ego(5.0), DT)
        b = pid.step(plan, kit.ego(5.0), DT)
    assert (a.steer, a.throttle, a.brake) == pytest.approx((b.steer, b.throttle, b.brake))
    assert a.steer > 0.0 and tokens.debug["source"] == "pid"


def test_switching_sources_keeps_the_rate_limit(kit):
    ctrl = TokenController(PIDControllerConfig(max_steer_rate_per_s=1.0))
    ctrl.step(_with_controls(kit.straight_plan(3.0), Control(steer=0.05)), kit.ego(3.0), DT)
    out = ctrl.step(kit.arc_plan(3.0, radius_m=-5.0), kit.ego(3.0), DT)  # PID wants hard right
    assert out.steer >= 0.05 - 1.0 * DT - 1e-9


def test_initial_brake_applies_to_tokens(kit):
    ctrl = TokenController(PIDControllerConfig(initial_brake_s=0.2))
    plan = _with_controls(kit.straight_plan(3.0), Control(throttle=0.5))
    outs = [ctrl.step(plan, kit.ego(0.0), DT) for _ in range(6)]
    assert all(o.brake == 1.0 for o in outs[:4]) and outs[5].brake == 0.0


def test_make_controller_builds_both_from_yaml():
    from pathlib import Path

    yaml = Path(__file__).resolve().parents[2] / "configs/control/pid_carla.yaml"
    for name, cls in (("pid", PIDController), ("tokens", TokenController), ("token", TokenController)):
        ctrl = make_controller(name, yaml)
        assert isinstance(ctrl, cls) and isinstance(ctrl, Controller)
        assert ctrl.cfg.initial_brake_s == 2.0
