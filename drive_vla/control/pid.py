"""A windowed discrete PID (the form TCP and TransFuser++ use) and the rate limiter shared by the controllers."""

from __future__ import annotations

import math
from collections import deque

from drive_vla.types import Control


class WindowedPID:
    """out = kp * e + ki * mean(last n errors) + kd * (e_t - e_{t-1}).

    The window starts filled with zeros (so the integral term ramps in), as in the TCP/TF++ agents. The
    window length is given in seconds and turned into a number of steps with each call's ``dt``; the
    derivative is scaled by ``tuned_dt_s / dt`` so that gains tuned per 20 Hz step mean the same at other
    control rates.
    """

    def __init__(self, kp: float, ki: float, kd: float, window_s: float, tuned_dt_s: float = 0.05) -> None:
        self.kp, self.ki, self.kd = float(kp), float(ki), float(kd)
        self.window_s = float(window_s)
        self.tuned_dt_s = float(tuned_dt_s)
        self._errors: deque[float] = deque()
        self._n = 0
        self._prev = 0.0

    def reset(self) -> None:
        self._errors.clear()
        self._n = 0
        self._prev = 0.0

    def step(self, error: float, dt: float) -> float:
        """Feed one error sample, return the PID output."""
        n = max(1, int(round(self.window_s / dt)))
        if n != self._n:
            # (re)size the window, keeping the newest errors and padding with zeros
            kept = list(self._errors)[-n:]
            self._errors = deque([0.0] * (n - len(kept)) + kept, maxlen=n)
            self._n = n
        self._errors.append(float(error))
        integral = sum(self._errors) / n
        derivative = (float(error) - self._prev) * (self.tuned_dt_s / dt)
        self._prev = float(error)
        return self.kp * float(error) + self.ki * integral + self.kd * derivative


def _limit_rise(value: float, previous: float, rate_per_s: float | None, dt: float) -> float:
    if rate_per_s is None:
        return value
    return min(value, previous + rate_per_s * dt)


class ActuatorLimiter:
    """Clip to actuator limits and limit how fast each actuator may move.

    Steer changes are limited in both directions (``max_steer_rate_per_s``); throttle and brake only
    when rising (releasing a pedal is never delayed). A braking command zeroes the throttle.
    """

    def __init__(
        self,
        max_steer: float = 1.0,
        max_throttle: float = 1.0,
        max_brake: float = 1.0,
        max_steer_rate_per_s: float | None = None,
        max_throttle_rise_per_s: float | None = None,
        max_brake_rise_per_s: float | None = None,
    ) -> None:
        self.max_steer, self.max_throttle, self.max_brake = max_steer, max_throttle, max_brake
        self.max_steer_rate_per_s = max_steer_rate_per_s
        self.max_throttle_rise_per_s = max_throttle_rise_per_s
        self.max_brake_rise_per_s = max_brake_rise_per_s
        self.last = Control()

    def reset(self) -> None:
        self.last = Control()

    def apply(self, steer: float, throttle: float, brake: float, dt: float) -> Control:
        """Limit a raw command (canonical steer, positive left) and remember it."""
        steer = 0.0 if not math.isfinite(steer) else steer
        throttle = 0.0 if not math.isfinite(throttle) else throttle
        brake = self.max_brake if not math.isfinite(brake) else brake  # a NaN brake request brakes
        steer = min(max(steer, -self.max_steer), self.max_steer)
        throttle = min(max(throttle, 0.0), self.max_throttle)
        brake = min(max(brake, 0.0), self.max_brake)
        if self.max_steer_rate_per_s is not None:
            step = self.max_steer_rate_per_s * dt
            steer = min(max(steer, self.last.steer - step), self.last.steer + step)
        brake = _limit_rise(brake, self.last.brake, self.max_brake_rise_per_s, dt)
        throttle = 0.0 if brake > 0.0 else _limit_rise(throttle, self.last.throttle, self.max_throttle_rise_per_s, dt)
        self.last = Control(steer=float(steer), throttle=float(throttle), brake=float(brake))
        return self.last
