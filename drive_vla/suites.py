"""Closed-loop route suites: named lists of (scenario, seed) routes, loaded from `configs/eval/*.yaml`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from drive_vla.config import load_config

SUITES_DIR = Path(__file__).resolve().parents[1] / "configs" / "eval"


@dataclass
class RouteSpec:
    """One route: a scenario type of the backend and the seed that randomises it."""

    scenario: str = "highway"
    seed: int = 0

    @property
    def route_id(self) -> str:
        return f"{self.scenario}-{self.seed}"


@dataclass
class DriveSuite:
    """A named set of routes. ``held_out`` marks suites whose seeds never generate training data."""

    name: str = "custom"
    env: str = "embedded"
    held_out: bool = False
    max_time_s: float = 40.0
    routes: list[RouteSpec] = field(default_factory=list)

    def __post_init__(self) -> None:
        ids = [r.route_id for r in self.routes]
        if len(set(ids)) != len(ids):
            raise ValueError(f"suite.routes: got duplicate routes {sorted({i for i in ids if ids.count(i) > 1})}")


def available_suites() -> list[str]:
    return sorted(p.stem for p in SUITES_DIR.glob("closed_loop_*.yaml"))


def load_suite(name_or_path: str) -> DriveSuite:
    """A suite by name (``configs/eval/closed_loop_<name>.yaml``) or by YAML path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = SUITES_DIR / f"closed_loop_{name_or_path}.yaml"
    if not path.is_file():
        names = [n.removeprefix("closed_loop_") for n in available_suites()]
        raise ValueError(f"suite: got {name_or_path!r}, expected a YAML path or one of {names}")
    suite = load_config(DriveSuite, path)
    if not suite.routes:
        raise ValueError(f"suite {path}: routes: got none, expected at least one route")
    return suite
