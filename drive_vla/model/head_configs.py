"""The auxiliary heads' settings (``ModelConfig.bev_aux``, ``camera_aux``, ``free_space``; ``PerceptionConfig``).

Kept apart from the heads (``bev_aux``, ``camera_aux``, ``free_space``, which need torch), so that loading a model
or training config does not import torch.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class BEVAuxConfig:
    """The occupancy task (``ModelConfig.bev_aux``).

    Attributes:
        enabled: add the head and the "bev_bce" loss (weight ``loss.bev_bce``).
        x_range_m: (back, front) extent along the ego's heading, metres.
        y_range_m: (right, left) extent, metres (y points left).
        cell_m: cell size, metres.
        steps: keyframes ahead whose agents are drawn (0 = now; 2 = 1 s at 2 Hz).
        hidden: width of the head's hidden layer.
    """

    enabled: bool = False
    x_range_m: tuple[float, float] = (-8.0, 56.0)
    y_range_m: tuple[float, float] = (-24.0, 24.0)
    cell_m: float = 4.0
    steps: tuple[int, ...] = (0, 2, 4)
    hidden: int = 256

    def __post_init__(self) -> None:
        self.x_range_m = tuple(float(v) for v in self.x_range_m)
        self.y_range_m = tuple(float(v) for v in self.y_range_m)
        self.steps = tuple(int(s) for s in self.steps)
        for name in ("x_range_m", "y_range_m"):
            lo, hi = getattr(self, name)
            if not hi > lo:
                raise ValueError(f"bev_aux.{name}: got {[lo, hi]}, expected [low, high] with high > low")
        if self.cell_m <= 0:
            raise ValueError(f"bev_aux.cell_m: got {self.cell_m}, expected > 0")
        if not self.steps or min(self.steps) < 0:
            raise ValueError(f"bev_aux.steps: got {list(self.steps)}, expected keyframe offsets >= 0")

    @property
    def shape(self) -> tuple[int, int, int]:
        """(steps, rows along x, columns along y)."""
        nx = int(round((self.x_range_m[1] - self.x_range_m[0]) / self.cell_m))
        ny = int(round((self.y_range_m[1] - self.y_range_m[0]) / self.cell_m))
        return len(self.steps), nx, ny


@dataclass
class CameraAuxConfig:
    """The camera-space task (``ModelConfig.camera_aux``).

    Attributes:
        enabled: add the head and the "cam_aux" loss (weight ``loss.cam_aux``).
        range_m: boxes whose centre is farther from the ego than this are not drawn.
        depth_weight: weight of the log-depth term (cells covered by a box) beside the coverage term.
    """

    enabled: bool = False
    range_m: float = 60.0
    depth_weight: float = 1.0

    def __post_init__(self) -> None:
        if not self.range_m > 0:
            raise ValueError(f"camera_aux.range_m: got {self.range_m}, expected > 0 metres")
        if self.depth_weight < 0:
            raise ValueError(f"camera_aux.depth_weight: got {self.depth_weight}, expected >= 0")


SOURCES = ("hidden", "camera", "own")


@dataclass
class FreeSpaceConfig:
    """The free-distance head (``ModelConfig.free_space``).

    Attributes:
        enabled: add the head and the "free_l1" loss (weight ``loss.free_l1``).
        corridor_m: half-width of the ego's corridor around the route polyline (ego half-width plus margin).
        max_m: labels and predictions are capped at this distance ("clear as far as this").
        cap_speed: outside training, slow the head's plan to what the predicted gap allows.
        time_gap_s: time gap of the cap (the expert's IDM time gap).
        standstill_m: predicted distance (from the ego's origin, the rear axle) at which the cap is 0.
        source: what the head reads: "hidden" (the planner's hidden state), "camera" (the front camera's
            backbone feature map, pooled to 5x8, with the route points): a direct path from what the
            backbone sees, where the hidden state passes through the resampler's few tokens and the LM; or
            "own" (a backbone of its own on the front camera, with the route points).
        backbone: timm model name of the "own" backbone (random weights).
        feature_index: which feature level of the "own" backbone the head reads (2: stride 8 for lcnet).
        junction_approach_mps: with ``cap_speed``, within ``junction_approach_m`` of the route's next yield line
            (``Observation.junction_m``: a navigation system's distance to the junction entry) the cap is also
            at most ``sqrt(v^2 + 2 a d)`` with v this speed, a ``junction_approach_decel_mps2`` and d that
            distance: the teacher's approach (5 m/s at the line, 3 m/s^2). 0: off.
        junction_approach_m: how far before the yield line that cap starts.
        junction_approach_decel_mps2: the deceleration of that approach.
    """

    enabled: bool = False
    corridor_m: float = 1.3
    max_m: float = 50.0
    cap_speed: bool = False
    time_gap_s: float = 1.4
    standstill_m: float = 7.0
    source: str = "hidden"
    backbone: str = "lcnet_050"
    feature_index: int = 2
    junction_approach_mps: float = 0.0
    junction_approach_m: float = 25.0
    junction_approach_decel_mps2: float = 3.0

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"free_space.source: got {self.source!r}, expected one of {list(SOURCES)}")
        if self.feature_index < 0:
            raise ValueError(f"free_space.feature_index: got {self.feature_index!r}, expected >= 0")
        for name in ("corridor_m", "max_m", "time_gap_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"free_space.{name}: got {getattr(self, name)!r}, expected > 0")
        if not self.junction_approach_mps >= 0:
            raise ValueError(
                f"free_space.junction_approach_mps: got {self.junction_approach_mps!r}, expected >= 0 (0: off)"
            )
        for name in ("junction_approach_m", "junction_approach_decel_mps2"):
            if not getattr(self, name) > 0:
                raise ValueError(f"free_space.{name}: got {getattr(self, name)!r}, expected > 0")
        if not 0 <= self.standstill_m < self.max_m:
            raise ValueError(f"free_space.standstill_m: got {self.standstill_m!r}, expected in [0, max_m)")
