"""The embedded world as a closed-loop backend (`DrivingEnv`), and its expert as a planner.

``EmbeddedEnv`` steps the world at its simulation rate (10 Hz by default) and renders the six cameras only
when the drive loop asks for an observation (``observe=True``), because rendering is most of the cost.
Every ``StepResult.info`` carries the current ``EgoState`` under "ego" so the controller can run between
observations.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from drive_vla.geometry import global_to_sim, local_poses_to_global
from drive_vla.sim.config import WorldConfig
from drive_vla.sim.embedded import EmbeddedWorld
from drive_vla.types import STEP_DT_S, Control, EgoState, Observation, Plan, StepResult, Trajectory


class EmbeddedEnv:
    """A `DrivingEnv` over `EmbeddedWorld`.

    Args:
        config: the world's config (dynamics, traffic, expert, camera size).
        image_wh: render size of the six cameras; None uses ``config.camera``.
    """

    def __init__(self, config: WorldConfig | None = None, image_wh: tuple[int, int] | None = None) -> None:
        self.world = EmbeddedWorld(config)
        self.image_wh = image_wh or (self.world.cfg.camera.width, self.world.cfg.camera.height)

    @property
    def dt_s(self) -> float:
        return float(self.world.cfg.dt_s)

    def scenario_names(self) -> list[str]:
        return self.world.scenario_names()

    def reset(self, scenario: str, seed: int) -> Observation:
        self.world.reset(scenario, seed)
        return self.observe()

    def observe(self) -> Observation:
        """Render the six cameras and build the current Observation."""
        return self.world.observation(*self.image_wh)

    def step(self, control: Control, observe: bool = True) -> StepResult:
        if not isinstance(control, Control):
            raise ValueError(f"control: got {type(control).__name__}, expected a drive_vla.types.Control")
        info = dict(self.world.step(control))
        info["ego"] = self.world.ego_state()
        info["pose"] = tuple(float(v) for v in self.world.ego_pose)
        info["collision_with"] = getattr(self.world, "collision_with", None)
        info["collision_detail"] = getattr(self.world, "collision_detail", None)
        return StepResult(observation=self.observe() if observe else None, done=bool(info["done"]), info=info)

    def drivable(self, points_ego: np.ndarray, margin_m: float = 0.0) -> np.ndarray:
        """(N,) bool: which (N, 2) points of the current ego frame lie on a lane of the road network.

        The world's off-road test (a point on no lane), widened by ``margin_m`` beyond each lane's edge.
        """
        pts = np.asarray(points_ego, dtype=np.float64)
        if pts.ndim != 2 or pts.shape[1] != 2 or not np.all(np.isfinite(pts)):
            raise ValueError(f"points_ego: got array{pts.shape}, expected finite (N, 2) ego-frame points")
        if self.world.scenario is None:
            raise RuntimeError("EmbeddedEnv.drivable: call reset(scenario, seed) first")
        glob = local_poses_to_global(np.concatenate([pts, np.zeros((len(pts), 1))], axis=1), self.world.ego_pose)
        lanes = self.world.road.network.lanes_list()
        sim = [np.array(global_to_sim(x, y, 0.0)[:2]) for x, y, _ in glob]
        return np.array([any(lane.on_lane(p, margin=margin_m) for lane in lanes) for p in sim], dtype=bool)

    def close(self) -> None:
        self.world.scenario = None


class ExpertPlanner:
    """The world's rule-based expert as a Planner: its plan carries the expert's control and reason.

    The trajectory is a constant-speed extrapolation (the expert acts through its control, executed by
    a control-token style controller); ``Plan.text`` is the expert's own explanation.
    """

    observes = False  # reads the world directly: the drive loop need not render for it

    def __init__(self, env: EmbeddedEnv) -> None:
        self.env = env

    def reset(self) -> None:
        pass

    def predict_batch(self, observations: Sequence[Observation]) -> list[Plan]:
        decision = self.env.world.expert_decision()
        speed = max(float(self.env.world.ego_speed_mps), 0.0)
        t = STEP_DT_S * np.arange(1, 7, dtype=np.float32)
        xy = np.stack([speed * t, np.zeros_like(t)], axis=1)
        plan = Plan(
            trajectory=Trajectory(xy),
            controls=decision.control,
            text=decision.explanation,
            meta_action=decision.reason,
        )
        return [plan for _ in observations]

    def explain(self, obs: Observation, question: str | None = None) -> str:
        return self.env.world.expert_decision().explanation


class ExpertControl:
    """Applies the expert's own control unchanged (no rate limits: the expert already drives smoothly)."""

    def reset(self) -> None:
        pass

    def step(self, plan: Plan, ego: EgoState, dt: float) -> Control:
        if plan.controls is None:
            raise ValueError("plan.controls: got None, expected the expert's control")
        return plan.controls
