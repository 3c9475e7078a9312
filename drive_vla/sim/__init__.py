"""The embedded driving world: highway-env roads and traffic, an expert driver, six cameras, dataset writing.

Modules (imports run one way: world.py is the core; scenarios, expert and renderer act on it; embedded.py
composes them; obstacles, dataset, env, onpolicy and bench_api use the composed world):
    world.py     World, the core: roads, traffic, ego, route tracking, collisions, pose log, step(Control).
    scenarios.py the scenario suite: highway, merge, intersection, roundabout (seeded routes and traffic).
    expert.py    the expert driver: pure pursuit, IDM, yielding, merging, stopping.
    decision.py  ExpertDecision (reason code, explanation, control, lead / yield target) and its sentence.
    render.py    the six-camera pinhole renderer (numpy + OpenCV, near-plane clipping, painter's order).
    embedded.py  EmbeddedWorld: World + scenario suite + expert + cameras (reset by name, step(None), render).
    vehicles.py  highway-env traffic vehicles with ids and sizes, and the ego car.
    route.py     the ego's route through the lane graph, and the path ahead on it.
    roads.py     highway-env roads with cached neighbour search (same traffic, less cost).
    dataset.py   make_embedded(): record the expert as a nuScenes-format dataset with DriveLM-style labels.
    obstacles.py counterfactual obstacles: a keyframe branched with a car standing on the route ahead.
    qa.py        per-sample QA built from simulator facts.
    env.py       EmbeddedEnv, the closed-loop DrivingEnv backend, and the expert as a planner.
    onpolicy.py  on-policy rollouts labelled by the expert (DAgger).
    config.py    WorldConfig (ego dynamics, traffic, expert, camera) and DatasetConfig.
    bench_api.py timing functions (world steps/s, render keyframes/s, dataset samples/s, expert futures).

World API::

    from drive_vla.sim import EmbeddedWorld, WorldConfig
    world = EmbeddedWorld(WorldConfig())
    world.reset("roundabout", seed=7)       # EmbeddedWorld.scenario_names() lists the scenarios
    while not world.done:
        info = world.step(None)             # None: the expert drives; or a drive_vla.types.Control
    obs = world.observation(256, 144)       # drive_vla.types.Observation

The names below are imported on first use, so ``import drive_vla.sim.config`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "EmbeddedWorld": "drive_vla.sim.embedded",
    "World": "drive_vla.sim.world",
    "Agent": "drive_vla.sim.world",
    "WorldConfig": "drive_vla.sim.config",
    "DatasetConfig": "drive_vla.sim.config",
    "ExpertDecision": "drive_vla.sim.decision",
    "SCENARIOS": "drive_vla.sim.scenarios",
    "make_embedded": "drive_vla.sim.dataset",
    "CameraRenderer": "drive_vla.sim.render",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'drive_vla.sim' has no attribute {name!r}")
