"""The data that flows through drive-vla: observations, ego state, trajectories, plans, controls, samples.

Every array documents its shape, frame and unit. All trajectories and boxes inside the library are in
the canonical ego frame of the current sample (nuScenes ego frame: x forward, y left, z up, metres; yaw
counter-clockwise, radians). Each type has ``validate()``, called by its constructor, which raises
``ValueError`` naming the field, the value and what was expected.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Protocol, runtime_checkable

import numpy as np

CAMERA_NAMES: tuple[str, ...] = (
    "CAM_FRONT",
    "CAM_FRONT_RIGHT",
    "CAM_FRONT_LEFT",
    "CAM_BACK",
    "CAM_BACK_LEFT",
    "CAM_BACK_RIGHT",
)
FUTURE_STEPS = 6  # waypoints at 2 Hz: 0.5 s ... 3.0 s
HISTORY_STEPS = 4  # past poses at 2 Hz: -2.0 s ... -0.5 s
STEP_DT_S = 0.5
ROUTE_TARGET_POINTS = 2  # the next route points handed to the policy (TCP / TransFuser++ style intent)
MAX_ROUTE_TARGET_M = 200.0  # a route point farther than this from the ego is a fault, not intent
JUNCTION_HORIZON_M = 100.0  # Observation.junction_m: a junction farther along the route reads as this
MAX_SPEED_LIMIT_MPS = 100.0  # a speed limit above this (360 km/h) is a fault


class Command(IntEnum):
    """Navigation command; integer order follows VAD's one-hot (right, left, straight)."""

    RIGHT = 0
    LEFT = 1
    STRAIGHT = 2

    @classmethod
    def parse(cls, value: Command | int | str) -> Command:
        """Accept a Command, its integer value or its (case-insensitive) name."""
        if isinstance(value, Command):
            return value
        if isinstance(value, str):
            try:
                return cls[value.strip().upper()]
            except KeyError:
                pass
        elif isinstance(value, (int, np.integer)) and int(value) in (0, 1, 2):
            return cls(int(value))
        raise ValueError(f"command: got {value!r}, expected one of {[c.name for c in cls]} or 0..2")


def _fail(name: str, value: Any, expected: str) -> None:
    shown = value if not isinstance(value, np.ndarray) else f"array{tuple(value.shape)} {value.dtype}"
    raise ValueError(f"{name}: got {shown!r}, expected {expected}")


def check_finite_scalar(name: str, value: Any, lo: float = -math.inf, hi: float = math.inf) -> None:
    """Raise ValueError unless ``value`` is a finite real number in [lo, hi]."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        _fail(name, value, "a real number")
    if not math.isfinite(float(value)):
        _fail(name, value, "a finite number")
    if not lo <= float(value) <= hi:
        _fail(name, value, f"a number in [{lo}, {hi}]")


def check_array(
    name: str,
    value: Any,
    shape: Sequence[int | None],
    *,
    dtype: type | None = None,
    finite: bool = True,
) -> None:
    """Raise ValueError unless ``value`` is an ndarray of ``shape`` (None = any size) and finite."""
    if not isinstance(value, np.ndarray):
        _fail(name, type(value).__name__, f"a numpy array of shape {tuple(shape)}")
    if value.ndim != len(shape) or any(s is not None and s != d for s, d in zip(shape, value.shape)):
        want = tuple("*" if s is None else s for s in shape)
        _fail(name, value, f"shape {want}")
    if dtype is not None and value.dtype != dtype:
        _fail(name, value, f"dtype {np.dtype(dtype).name}")
    if finite and value.dtype.kind == "f" and not np.all(np.isfinite(value)):
        _fail(name, value, "finite values (found NaN or inf)")


def check_speed_limit(name: str, value: Any) -> None:
    """Raise ValueError unless ``value`` is a finite speed in (0, MAX_SPEED_LIMIT_MPS] m/s."""
    check_finite_scalar(name, value)
    if not 0.0 < float(value) <= MAX_SPEED_LIMIT_MPS:
        _fail(name, value, f"a speed limit in (0, {MAX_SPEED_LIMIT_MPS:.0f}] m/s")


def check_junction(name: str, value: Any) -> None:
    """Raise ValueError unless ``value`` is a finite distance in [0, JUNCTION_HORIZON_M] metres."""
    check_finite_scalar(name, value)
    if not 0.0 <= float(value) <= JUNCTION_HORIZON_M:
        _fail(name, value, f"a distance in [0, {JUNCTION_HORIZON_M:.0f}] m along the route")


def check_route_target(name: str, value: Any) -> None:
    """Raise ValueError unless ``value`` is a finite (ROUTE_TARGET_POINTS, 2) array within MAX_ROUTE_TARGET_M."""
    check_array(name, value, (ROUTE_TARGET_POINTS, 2))
    far = float(np.max(np.hypot(value[:, 0], value[:, 1])))
    if far > MAX_ROUTE_TARGET_M:
        _fail(name, f"a point {far:.1f} m away", f"route points within {MAX_ROUTE_TARGET_M:.0f} m of the ego")


EGO_SOURCES = ("can", "poses", "sim", "sensors", "unknown")


@dataclass(frozen=True)
class EgoState:
    """Ego vehicle state at the current time.

    Attributes:
        speed_mps: forward speed, m/s (>= 0 for forward driving; small negative while reversing).
        accel_mps2: (2,) acceleration in the ego frame (longitudinal, lateral), m/s^2.
        yaw_rate_rps: yaw rate, rad/s, counter-clockwise positive.
        steer: normalised steering in [-1, 1], positive turns left (canonical frame).
        source: where the values come from: "can" (CAN bus), "poses" (derived from ego poses),
            "sim" (the embedded world) or "sensors" (CARLA speedometer/IMU); "unknown" where nothing is
            known (e.g. DriveLM frames given as images alone): every value is then 0, and a model reads
            its learned "unknown ego" input in place of the ego state, past poses and command
            (``EgoState.unknown()``).
    """

    speed_mps: float
    accel_mps2: np.ndarray = field(default_factory=lambda: np.zeros(2, dtype=np.float32))
    yaw_rate_rps: float = 0.0
    steer: float = 0.0
    source: str = "poses"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        check_finite_scalar("ego.speed_mps", self.speed_mps, -20.0, 100.0)
        check_array("ego.accel_mps2", self.accel_mps2, (2,))
        check_finite_scalar("ego.yaw_rate_rps", self.yaw_rate_rps, -10.0, 10.0)
        check_finite_scalar("ego.steer", self.steer, -1.0, 1.0)
        if self.source not in EGO_SOURCES:
            _fail("ego.source", self.source, f"one of {list(EGO_SOURCES)}")
        if self.source == "unknown" and (
            self.speed_mps or self.yaw_rate_rps or self.steer or np.any(np.asarray(self.accel_mps2))
        ):
            _fail(
                "ego", "values with source 'unknown'", "all values 0 when the source is 'unknown' (EgoState.unknown())"
            )

    @classmethod
    def unknown(cls) -> EgoState:
        """An ego state of which nothing is known: all values 0, source "unknown"."""
        return cls(speed_mps=0.0, source="unknown")

    @property
    def known(self) -> bool:
        return self.source != "unknown"

    def as_vector(self) -> np.ndarray:
        """(6,) float32 [speed, ax, ay, yaw_rate, steer, from_can]."""
        return np.array(
            [self.speed_mps, *self.accel_mps2, self.yaw_rate_rps, self.steer, float(self.source == "can")],
            dtype=np.float32,
        )


@dataclass(frozen=True)
class Trajectory:
    """Waypoints in the canonical ego frame of the current sample.

    Attributes:
        xy: (T, 2) positions in metres (x forward, y left).
        yaw_rad: (T,) headings, counter-clockwise radians.
        mask: (T,) bool, False where the waypoint is missing (e.g. past the end of a scene).
        dt_s: time between waypoints, seconds (0.5 for 2 Hz).
    """

    xy: np.ndarray
    yaw_rad: np.ndarray | None = None
    mask: np.ndarray | None = None
    dt_s: float = STEP_DT_S

    def __post_init__(self) -> None:
        xy = np.asarray(self.xy, dtype=np.float32) if not isinstance(self.xy, np.ndarray) else self.xy
        object.__setattr__(self, "xy", xy)
        n = xy.shape[0] if xy.ndim == 2 else -1
        if self.yaw_rad is None and n >= 0:
            object.__setattr__(self, "yaw_rad", np.zeros(n, dtype=np.float32))
        if self.mask is None and n >= 0:
            object.__setattr__(self, "mask", np.ones(n, dtype=bool))
        self.validate()

    def validate(self) -> None:
        check_array("trajectory.xy", self.xy, (None, 2))
        n = self.xy.shape[0]
        check_array("trajectory.yaw_rad", self.yaw_rad, (n,))
        check_array("trajectory.mask", self.mask, (n,), dtype=np.bool_)
        check_finite_scalar("trajectory.dt_s", self.dt_s, 1e-3, 10.0)

    def __len__(self) -> int:
        return int(self.xy.shape[0])

    @property
    def poses(self) -> np.ndarray:
        """(T, 3) float32 [x, y, yaw]."""
        return np.concatenate([self.xy, self.yaw_rad[:, None]], axis=1).astype(np.float32)

    @property
    def is_complete(self) -> bool:
        return bool(self.mask.all())


@dataclass(frozen=True)
class Boxes:
    """3D boxes of other agents in the canonical ego frame.

    Attributes:
        xyz: (N, 3) box centres, metres.
        lwh: (N, 3) length (along heading), width, height, metres.
        yaw_rad: (N,) heading, counter-clockwise radians.
        category: N category names (nuScenes style, e.g. "vehicle.car", "human.pedestrian.adult").
        instance: N instance tokens, stable across time for one agent.
    """

    xyz: np.ndarray
    lwh: np.ndarray
    yaw_rad: np.ndarray
    category: tuple[str, ...] = ()
    instance: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.validate()

    @classmethod
    def empty(cls) -> Boxes:
        z = np.zeros((0, 3), dtype=np.float32)
        return cls(z, z.copy(), np.zeros(0, dtype=np.float32))

    def validate(self) -> None:
        check_array("boxes.xyz", self.xyz, (None, 3))
        n = self.xyz.shape[0]
        check_array("boxes.lwh", self.lwh, (n, 3))
        if np.any(self.lwh < 0):
            _fail("boxes.lwh", self.lwh, "non-negative sizes")
        check_array("boxes.yaw_rad", self.yaw_rad, (n,))
        for name, seq in (("boxes.category", self.category), ("boxes.instance", self.instance)):
            if len(seq) not in (0, n):
                _fail(name, len(seq), f"{n} entries (one per box) or none")

    def __len__(self) -> int:
        return int(self.xyz.shape[0])


@dataclass(frozen=True)
class Observation:
    """What the policy sees at one time step.

    Attributes:
        images: camera name -> (H, W, 3) uint8 RGB; all six CAMERA_NAMES, same size.
        intrinsics: camera name -> (3, 3) pinhole matrix for that image size, pixels.
        extrinsics: camera name -> (4, 4) camera-to-ego transform (OpenCV camera axes: x right,
            y down, z forward).
        ego: the current EgoState.
        history: (HISTORY_STEPS, 3) past poses [x, y, yaw] in the current ego frame, oldest first
            (-2.0, -1.5, -1.0, -0.5 s).
        command: navigation command.
        instruction: free-text navigation instruction.
        timestamp_s: time of the observation, seconds.
        route_target: (ROUTE_TARGET_POINTS, 2) the next route points [x, y] in the current ego frame,
            metres, nearest first; None where no route exists (nuScenes). Filled from the embedded
            world's route and, in CARLA, from the leaderboard's global plan; never from a recorded future.
        speed_limit_mps: the speed the car may drive where it is, m/s, as a map or navigation system gives
            it (the embedded world's cruise speed for the road, CARLA's ``get_speed_limit``); None where
            unknown (nuScenes).
        junction_m: the distance along the route to the next junction entry (the yield line of an
            intersection or roundabout), metres, in [0, JUNCTION_HORIZON_M]; JUNCTION_HORIZON_M when none
            lies within it. A navigation system gives it: the embedded world's route, in CARLA the first
            waypoint of the global plan whose RoadOption is LEFT, RIGHT or STRAIGHT. None where unknown
            (nuScenes).
    """

    images: Mapping[str, np.ndarray]
    intrinsics: Mapping[str, np.ndarray]
    extrinsics: Mapping[str, np.ndarray]
    ego: EgoState
    history: np.ndarray = field(default_factory=lambda: np.zeros((HISTORY_STEPS, 3), dtype=np.float32))
    command: Command = Command.STRAIGHT
    instruction: str = "keep following the road"
    timestamp_s: float = 0.0
    route_target: np.ndarray | None = None
    speed_limit_mps: float | None = None
    junction_m: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "command", Command.parse(self.command))
        self.validate()

    def validate(self) -> None:
        for name, table in (("images", self.images), ("intrinsics", self.intrinsics), ("extrinsics", self.extrinsics)):
            if not isinstance(table, Mapping):
                _fail(f"observation.{name}", type(table).__name__, "a mapping camera name -> array")
            unknown = sorted(set(table) - set(CAMERA_NAMES))
            if unknown:
                _fail(f"observation.{name}", unknown, f"camera names from {list(CAMERA_NAMES)}")
            missing = [c for c in CAMERA_NAMES if c not in table]
            if missing:
                _fail(f"observation.{name}", f"missing {missing}", f"all six cameras {list(CAMERA_NAMES)}")
        first = self.images[CAMERA_NAMES[0]]
        check_array(f"observation.images[{CAMERA_NAMES[0]}]", first, (None, None, 3), dtype=np.uint8)
        for cam in CAMERA_NAMES:
            check_array(f"observation.images[{cam}]", self.images[cam], first.shape, dtype=np.uint8)
            check_array(f"observation.intrinsics[{cam}]", self.intrinsics[cam], (3, 3))
            check_array(f"observation.extrinsics[{cam}]", self.extrinsics[cam], (4, 4))
        if not isinstance(self.ego, EgoState):
            _fail("observation.ego", type(self.ego).__name__, "an EgoState")
        check_array("observation.history", self.history, (HISTORY_STEPS, 3))
        if not isinstance(self.instruction, str) or len(self.instruction) > 1000:
            _fail("observation.instruction", self.instruction, "a string of at most 1000 characters")
        check_finite_scalar("observation.timestamp_s", self.timestamp_s)
        if self.route_target is not None:
            check_route_target("observation.route_target", self.route_target)
        if self.speed_limit_mps is not None:
            check_speed_limit("observation.speed_limit_mps", self.speed_limit_mps)
        if self.junction_m is not None:
            check_junction("observation.junction_m", self.junction_m)

    @property
    def image_hw(self) -> tuple[int, int]:
        h, w = self.images[CAMERA_NAMES[0]].shape[:2]
        return int(h), int(w)


@dataclass(frozen=True)
class Control:
    """Actuator command for the current step.

    Attributes:
        steer: in [-1, 1], positive turns LEFT (canonical frame; CARLA's sign is flipped in carla_agents).
        throttle: in [0, 1].
        brake: in [0, 1].
    """

    steer: float = 0.0
    throttle: float = 0.0
    brake: float = 0.0

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        check_finite_scalar("control.steer", self.steer, -1.0, 1.0)
        check_finite_scalar("control.throttle", self.throttle, 0.0, 1.0)
        check_finite_scalar("control.brake", self.brake, 0.0, 1.0)

    @classmethod
    def emergency_brake(cls) -> Control:
        return cls(steer=0.0, throttle=0.0, brake=1.0)


@dataclass(frozen=True)
class Plan:
    """What the policy decided.

    Attributes:
        trajectory: planned future waypoints in the ego frame.
        controls: decoded control tokens for the current step, if the model produced them.
        text: explanation text, only when one was asked for.
        meta_action: e.g. "keep speed, straight", if the model produced one.
        timings_ms: named stage -> milliseconds (e.g. "vision", "lm", "total").
        speed_cap_mps: where a free-distance head caps the plan's speed (``free_space.cap_speed``), the highest
            speed the lane ahead allowed in this frame, m/s (the plan is slowed to it where it was faster);
            None otherwise.
    """

    trajectory: Trajectory
    controls: Control | None = None
    text: str | None = None
    meta_action: str | None = None
    timings_ms: Mapping[str, float] = field(default_factory=dict)
    speed_cap_mps: float | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        if not isinstance(self.trajectory, Trajectory):
            _fail("plan.trajectory", type(self.trajectory).__name__, "a Trajectory")
        if self.controls is not None and not isinstance(self.controls, Control):
            _fail("plan.controls", type(self.controls).__name__, "a Control or None")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "trajectory": {
                "xy": self.trajectory.xy.tolist(),
                "yaw_rad": self.trajectory.yaw_rad.tolist(),
                "dt_s": self.trajectory.dt_s,
                "frame": "ego (x forward, y left, metres)",
            },
            "controls": None
            if self.controls is None
            else {"steer": self.controls.steer, "throttle": self.controls.throttle, "brake": self.controls.brake},
            "text": self.text,
            "meta_action": self.meta_action,
            "timings_ms": dict(self.timings_ms),
            "speed_cap_mps": self.speed_cap_mps,
        }


@dataclass(frozen=True)
class Targets:
    """Supervision and evaluation targets of one sample.

    Attributes:
        trajectory: (FUTURE_STEPS) future waypoints with validity mask, ego frame.
        control: control label at the current step, where known.
        meta_action: e.g. "keep speed, straight" (see drive_vla.data.labels for the vocabulary).
        explanation: one-sentence reason for the behaviour.
        qa: (question, answer) pairs.
        future_boxes: one Boxes per future step, other agents in the CURRENT ego frame.
        boxes: the other agents now, ego frame, where annotated (None: unknown).
    """

    trajectory: Trajectory
    control: Control | None = None
    meta_action: str | None = None
    explanation: str | None = None
    qa: tuple[tuple[str, str], ...] = ()
    future_boxes: tuple[Boxes, ...] = ()
    boxes: Boxes | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        if not isinstance(self.trajectory, Trajectory):
            _fail("targets.trajectory", type(self.trajectory).__name__, "a Trajectory")
        if self.boxes is not None and not isinstance(self.boxes, Boxes):
            _fail("targets.boxes", type(self.boxes).__name__, "Boxes or None")
        if self.future_boxes and len(self.future_boxes) != len(self.trajectory):
            _fail("targets.future_boxes", len(self.future_boxes), f"{len(self.trajectory)} steps or none")
        for i, qa in enumerate(self.qa):
            if len(qa) != 2 or not all(isinstance(s, str) for s in qa):
                _fail(f"targets.qa[{i}]", qa, "a (question, answer) pair of strings")


@dataclass(frozen=True)
class SampleMeta:
    """Where a sample comes from."""

    token: str
    scene: str = ""
    dataset: str = ""
    index_in_scene: int = 0


@dataclass(frozen=True)
class Sample:
    """One training/evaluation example: features (observation), targets and provenance."""

    observation: Observation
    targets: Targets
    meta: SampleMeta

    def __post_init__(self) -> None:
        if not isinstance(self.observation, Observation):
            _fail("sample.observation", type(self.observation).__name__, "an Observation")
        if not isinstance(self.targets, Targets):
            _fail("sample.targets", type(self.targets).__name__, "a Targets")


@dataclass
class Batch:
    """A batch of observations (and optionally targets) as torch tensors, cameras in CAMERA_NAMES order.

    Attributes:
        images: (B, N_cam, 3, H, W) uint8 RGB.
        intrinsics: (B, N_cam, 3, 3) float32, pixels.
        extrinsics: (B, N_cam, 4, 4) float32, camera-to-ego.
        ego: (B, 6) float32, see EgoState.as_vector.
        history: (B, HISTORY_STEPS, 3) float32 past poses in the ego frame.
        command: (B,) int64 Command values.
        instructions: B instruction strings.
        route_target: (B, ROUTE_TARGET_POINTS, 2) float32 route points in the ego frame (zeros where absent).
        route_target_mask: (B,) bool, True where the observation has a route target.
        speed_limit: (B,) float32 speed limits, m/s (zeros where absent).
        speed_limit_mask: (B,) bool, True where the observation has a speed limit.
        junction: (B,) float32 distances to the next junction along the route, m (zeros where absent).
        junction_mask: (B,) bool, True where the observation has that distance.
        ego_known: (B,) bool, False where the ego state (and with it past poses and command) is unknown.
        traj: (B, FUTURE_STEPS, 3) float32 target poses, or None.
        traj_mask: (B, FUTURE_STEPS) bool, or None.
        control: (B, 3) float32 [steer, throttle, brake] labels, or None.
        control_mask: (B,) bool, True where a control label exists, or None.
        samples: the Sample objects (for text targets and metadata), when built from samples.
    """

    images: Any
    intrinsics: Any
    extrinsics: Any
    ego: Any
    history: Any
    command: Any
    instructions: list[str]
    route_target: Any = None
    route_target_mask: Any = None
    speed_limit: Any = None
    speed_limit_mask: Any = None
    junction: Any = None
    junction_mask: Any = None
    ego_known: Any = None
    traj: Any = None
    traj_mask: Any = None
    control: Any = None
    control_mask: Any = None
    samples: list[Sample] | None = None

    def __len__(self) -> int:
        return int(self.ego.shape[0])

    @classmethod
    def from_observations(cls, observations: Sequence[Observation], image_hw: Sequence[int] | None = None) -> Batch:
        """Stack observations into tensors.

        Args:
            observations: one or more observations whose cameras all have the same size.
            image_hw: (height, width) to bring every camera to first, as uint8 with an area filter
                (``drive_vla.data.images.resize_area``), so full-size frames are never stacked or converted;
                None keeps the observations' size.
        """
        import torch

        if not observations:
            raise ValueError("observations: got an empty sequence, expected at least one Observation")
        shape = observations[0].images[CAMERA_NAMES[0]].shape
        for i, obs in enumerate(observations):
            if obs.images[CAMERA_NAMES[0]].shape != shape:
                _fail(f"observations[{i}].images", obs.images[CAMERA_NAMES[0]], f"image shape {shape} like the first")
        if image_hw is not None and tuple(shape[:2]) != tuple(image_hw):
            from drive_vla.data.images import resize_area

            wh = (int(image_hw[1]), int(image_hw[0]))
            images = np.stack([np.stack([resize_area(o.images[c], wh) for c in CAMERA_NAMES]) for o in observations])
        else:
            images = np.stack([np.stack([o.images[c] for c in CAMERA_NAMES]) for o in observations])
        return cls(
            images=torch.from_numpy(np.ascontiguousarray(images.transpose(0, 1, 4, 2, 3))),
            intrinsics=torch.from_numpy(
                np.stack([np.stack([o.intrinsics[c] for c in CAMERA_NAMES]) for o in observations]).astype(np.float32)
            ),
            extrinsics=torch.from_numpy(
                np.stack([np.stack([o.extrinsics[c] for c in CAMERA_NAMES]) for o in observations]).astype(np.float32)
            ),
            ego=torch.from_numpy(np.stack([o.ego.as_vector() for o in observations])),
            history=torch.from_numpy(np.stack([o.history for o in observations]).astype(np.float32)),
            command=torch.tensor([int(o.command) for o in observations], dtype=torch.long),
            instructions=[o.instruction for o in observations],
            route_target=torch.from_numpy(
                np.stack(
                    [
                        np.zeros((ROUTE_TARGET_POINTS, 2)) if o.route_target is None else o.route_target
                        for o in observations
                    ]
                ).astype(np.float32)
            ),
            route_target_mask=torch.tensor([o.route_target is not None for o in observations], dtype=torch.bool),
            speed_limit=torch.tensor([o.speed_limit_mps or 0.0 for o in observations], dtype=torch.float32),
            speed_limit_mask=torch.tensor([o.speed_limit_mps is not None for o in observations], dtype=torch.bool),
            junction=torch.tensor([o.junction_m or 0.0 for o in observations], dtype=torch.float32),
            junction_mask=torch.tensor([o.junction_m is not None for o in observations], dtype=torch.bool),
            ego_known=torch.tensor([o.ego.known for o in observations], dtype=torch.bool),
        )

    @classmethod
    def from_samples(cls, samples: Sequence[Sample]) -> Batch:
        import torch

        batch = cls.from_observations([s.observation for s in samples])
        batch.traj = torch.from_numpy(np.stack([s.targets.trajectory.poses for s in samples]))
        batch.traj_mask = torch.from_numpy(np.stack([s.targets.trajectory.mask for s in samples]))
        ctrl = [s.targets.control for s in samples]
        batch.control = torch.tensor(
            [[c.steer, c.throttle, c.brake] if c else [0.0, 0.0, 0.0] for c in ctrl], dtype=torch.float32
        )
        batch.control_mask = torch.tensor([c is not None for c in ctrl], dtype=torch.bool)
        batch.samples = list(samples)
        return batch


@runtime_checkable
class Planner(Protocol):
    """Anything that plans: a trained DrivingPolicy, a baseline, the embedded world's expert."""

    def predict_batch(self, observations: Sequence[Observation]) -> list[Plan]: ...

    def reset(self) -> None: ...


@dataclass(frozen=True)
class StepResult:
    """What a DrivingEnv returns after one step.

    Attributes:
        observation: the new observation (cameras rendered only when the env was asked to).
        done: the episode ended (goal reached, collision that ends it, timeout, left the route).
        info: per-step facts for scoring: "time_s", "route_completion" (0..1), "collision" (None or the
            kind: "vehicle" | "pedestrian" | "static"), "off_road" (bool), "off_route_m", "speed_mps",
            "reason" (why done), and backend extras.
    """

    observation: Observation | None
    done: bool
    info: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class DrivingEnv(Protocol):
    """A closed-loop backend: the embedded world or CARLA."""

    def reset(self, scenario: str, seed: int) -> Observation: ...

    def step(self, control: Control) -> StepResult: ...

    def close(self) -> None: ...
