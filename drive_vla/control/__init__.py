"""Controllers that turn a Plan into steer/throttle/brake: PID over waypoints, decoded control tokens."""

from __future__ import annotations

from pathlib import Path

from drive_vla.control.base import Controller
from drive_vla.control.config import PIDControllerConfig
from drive_vla.control.pid_controller import PIDController
from drive_vla.control.token_controller import TokenController

CONTROLLERS = {"pid": PIDController, "tokens": TokenController}
_ALIASES = {"token": "tokens", "control_tokens": "tokens", "waypoints": "pid"}


def make_controller(name: str, cfg: PIDControllerConfig | str | Path | None = None) -> Controller:
    """Build a controller by name.

    Args:
        name: "pid" (waypoints) or "tokens" (decoded control tokens, PID fallback).
        cfg: a PIDControllerConfig, a YAML file for one (see configs/control/), or None for the defaults.
    """
    key = _ALIASES.get(str(name).strip().lower(), str(name).strip().lower())
    if key not in CONTROLLERS:
        raise ValueError(f"controller: got {name!r}, expected one of {sorted(CONTROLLERS)}")
    if cfg is None or isinstance(cfg, PIDControllerConfig):
        config = cfg
    elif isinstance(cfg, (str, Path)):
        from drive_vla.config import load_config

        config = load_config(PIDControllerConfig, cfg)
    else:
        raise ValueError(f"controller cfg: got {type(cfg).__name__}, expected PIDControllerConfig, a YAML path or None")
    return CONTROLLERS[key](config)


__all__ = ["CONTROLLERS", "Controller", "PIDController", "PIDControllerConfig", "TokenController", "make_controller"]
