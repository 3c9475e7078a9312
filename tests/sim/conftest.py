"""Fixtures of the embedded-world tests: a world with tiny cameras."""

from __future__ import annotations

import pytest

from drive_vla.sim.config import CameraConfig, WorldConfig
from drive_vla.sim.embedded import EmbeddedWorld


@pytest.fixture
def tiny_config() -> WorldConfig:
    return WorldConfig(camera=CameraConfig(width=64, height=36))


@pytest.fixture
def world(tiny_config: WorldConfig) -> EmbeddedWorld:
    return EmbeddedWorld(tiny_config)


def _clear(world: EmbeddedWorld) -> None:
    world.road.vehicles = [world.ego]
    world.scenario.maintain = lambda *args: None


@pytest.fixture
def clear_traffic():
    """A function that leaves the ego alone on the road (and stops the scenario from spawning more)."""
    return _clear
