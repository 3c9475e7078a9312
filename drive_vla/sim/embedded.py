"""EmbeddedWorld: the core world composed with the scenario suite, the expert driver and the six cameras.

API (global frame as in world.py; everything of ``World`` is available too)::

    world = EmbeddedWorld(WorldConfig())          # or load_config(WorldConfig, "configs/sim/world.yaml")
    EmbeddedWorld.scenario_names()                # the scenario suite's names
    world.reset("intersection", seed=3)           # deterministic for (scenario, seed); the expert drives the warm-up
    info = world.step(None)                       # one dt step; None = the expert drives, else a Control
    world.expert_decision()                       # ExpertDecision: reason, explanation, control, lead, ...
    world.render(width, height)                   # {camera: (H, W, 3) uint8 RGB}, the nuScenes rig
    world.calibration(width, height)              # (intrinsics, cam2ego extrinsics) of the rig
    world.observation(width, height)              # drive_vla.types.Observation (4 history poses at 2 Hz)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from drive_vla.geometry import rig_calibration
from drive_vla.route_planner import usable_route_target
from drive_vla.sim.config import WorldConfig, check_image_size
from drive_vla.sim.decision import ExpertDecision
from drive_vla.sim.expert import Expert
from drive_vla.sim.render import CameraRenderer, static_scene_for
from drive_vla.sim.scenarios import SCENARIOS, Scenario, make_scenario
from drive_vla.sim.world import World
from drive_vla.types import CAMERA_NAMES, Control, Observation


class EmbeddedWorld(World):
    """A ``World`` whose episodes come from the scenario suite, driven by the expert unless given a
    Control, and seen through the six cameras (see the module docstring for the API)."""

    def __init__(self, config: WorldConfig | None = None):
        super().__init__(config)
        self.expert = Expert(self.cfg.expert, self.cfg.ego)
        self.renderer = CameraRenderer(self.cfg.camera)
        self.scenario: Scenario | None = None
        self._decision: ExpertDecision | None = None

    @staticmethod
    def scenario_names() -> list[str]:
        """Names accepted by ``reset``."""
        return sorted(SCENARIOS)

    # ------------------------------------------------------------------ episode

    def reset(self, scenario: str, seed: int) -> None:
        """Start an episode of the scenario named ``scenario``; everything random is drawn from ``seed``.

        The expert drives ``warmup_s`` first (so the pose history is real); time 0 is the first keyframe.
        """
        self.start(make_scenario(scenario), seed)
        self.expert.reset(self.desired_speed_mps)
        self._decision = None
        while self.in_warmup:
            self.step(None)

    def step(self, control: Control | None = None) -> dict:
        """Advance one ``dt_s`` step; ``None`` lets the expert drive. Returns the step facts (see world.py)."""
        if self.scenario is None:
            raise RuntimeError("EmbeddedWorld.step: call reset(scenario, seed) first")
        if control is None:
            control = self.expert_decision().control
        elif not isinstance(control, Control):
            raise ValueError(f"control: got {type(control).__name__}, expected a drive_vla.types.Control or None")
        self._decision = None
        return super().step(control)

    def shift_ego_sideways(self, offset_m: float) -> None:
        """``World.shift_ego_sideways``; the expert then decides afresh for the moved car."""
        super().shift_ego_sideways(offset_m)
        self._decision = None

    def add_vehicle(self, vehicle) -> None:
        """``World.add_vehicle``; the expert then decides afresh with the vehicle there."""
        super().add_vehicle(vehicle)
        self._decision = None

    # ------------------------------------------------------------------ expert

    def expert_decision(self) -> ExpertDecision:
        """What the expert would do now, and why (cached until the next step)."""
        if self._decision is None:
            self._decision = self.expert.decide(self)
        return self._decision

    # ------------------------------------------------------------------ cameras

    def calibration(
        self, width: int | None = None, height: int | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """(intrinsics, cam2ego extrinsics) of the rig at this render size."""
        w, h = self._size(width, height)
        return rig_calibration(w, h)

    def render(
        self, width: int | None = None, height: int | None = None, cameras: Sequence[str] = CAMERA_NAMES
    ) -> dict[str, np.ndarray]:
        """Render the cameras: {camera: (H, W, 3) uint8 RGB} (default size from the camera config)."""
        w, h = self._size(width, height)
        images, _ = self.renderer.render(
            static_scene_for(self.road.network, self.cfg.camera), self.ego_pose, self.agents(), w, h, cameras
        )
        return images

    def observation(self, width: int | None = None, height: int | None = None) -> Observation:
        """The policy's view now: six images, calibration, ego state, history, command and instruction."""
        w, h = self._size(width, height)
        intr, extr = rig_calibration(w, h)
        return Observation(
            images=self.render(w, h),
            intrinsics=intr,
            extrinsics=extr,
            ego=self.ego_state(),
            history=self.history(),
            command=self.command,
            instruction=self.instruction,
            timestamp_s=self.time_s,
            route_target=usable_route_target(self.route_target(), "observation.route_target"),
            speed_limit_mps=self.speed_limit_mps(),
            junction_m=self.junction_m(),
        )

    def _size(self, width: int | None, height: int | None) -> tuple[int, int]:
        w = self.cfg.camera.width if width is None else width
        h = self.cfg.camera.height if height is None else height
        check_image_size("image", w, h)
        return int(w), int(h)
