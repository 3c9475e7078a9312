"""TokenController: executes the decoded control tokens of a plan, with PID fallback and the same limits."""

from __future__ import annotations

from typing import Any

from drive_vla.control.base import check_step_inputs
from drive_vla.control.config import PIDControllerConfig
from drive_vla.control.pid_controller import PIDController, make_limiter
from drive_vla.types import Control, EgoState, Plan


class TokenController:
    """Apply ``plan.controls`` (steer positive left, throttle, brake) through the actuator/rate limits.

    When a plan carries no controls, the PID controller (same config) tracks its waypoints instead.
    Brake values below ``token_min_brake`` count as no brake; any brake zeroes the throttle. The
    initial-brake window applies as for the PID controller.

    Attributes:
        debug: facts of the last step ("source": "tokens" or "pid", plus the PID's debug on fallback).
    """

    def __init__(self, cfg: PIDControllerConfig | None = None) -> None:
        self.cfg = cfg or PIDControllerConfig()
        self.fallback = PIDController(self.cfg)
        self.limiter = make_limiter(self.cfg)
        self.debug: dict[str, Any] = {}
        self._time_s = 0.0

    def reset(self) -> None:
        self.fallback.reset()
        self.limiter.reset()
        self.debug = {}
        self._time_s = 0.0

    def step(self, plan: Plan, ego: EgoState, dt: float) -> Control:
        check_step_inputs(plan, ego, dt)
        self._time_s += dt
        if plan.controls is None:
            out = self.fallback.step(plan, ego, dt)
            # keep both limiters in the same state so switching sources does not jump
            self.limiter.last = out
            self.debug = {"source": "pid", **self.fallback.debug}
            return out
        c = plan.controls
        brake = c.brake if c.brake >= self.cfg.token_min_brake else 0.0
        throttle = c.throttle
        if self._time_s <= self.cfg.initial_brake_s + 1e-9:
            throttle, brake = 0.0, self.cfg.brake_value
        out = self.limiter.apply(c.steer, throttle, brake, dt)
        self.fallback.limiter.last = out
        self.debug = {"source": "tokens", "requested": {"steer": c.steer, "throttle": c.throttle, "brake": c.brake}}
        return out
