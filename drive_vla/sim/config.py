"""Typed configs of the embedded driving world: ego dynamics, traffic, expert driver, cameras, datasets."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class EgoDynamicsConfig:
    """The ego car and how a ``Control`` maps onto highway-env's kinematic bicycle model.

    ``steer`` in [-1, 1] (positive LEFT) becomes a front-wheel angle ``steer * max_steer_rad``;
    the longitudinal acceleration is ``throttle * max_accel_mps2 - brake * max_brake_mps2`` minus
    ``coast_decel_mps2`` while moving. Speed is clamped to [0, max_speed_mps] (no reversing).
    """

    length_m: float = 4.084  # nuScenes ego box (REFERENCE.md, planning metrics)
    width_m: float = 1.85
    height_m: float = 1.56
    # The ego frame's origin is the rear axle (nuScenes convention); the box centre, which highway-env
    # simulates, lies this far ahead of it (LiDAR 0.94 m ahead of the origin + box 0.5 m ahead of the LiDAR).
    center_ahead_m: float = 1.44
    max_steer_rad: float = 0.6  # front-wheel angle at |steer| = 1 (~34 deg; tightest junction turn needs ~0.45)
    max_accel_mps2: float = 4.0  # at throttle = 1 (a mid-size car, 0-100 km/h in ~7 s)
    max_brake_mps2: float = 8.0  # at brake = 1 (dry-road emergency braking)
    coast_decel_mps2: float = 0.3  # rolling resistance and drag with neither pedal pressed
    max_speed_mps: float = 35.0

    @property
    def front_m(self) -> float:
        """The front bumper ahead of the rear axle (the ego frame's origin), metres."""
        return self.center_ahead_m + self.length_m / 2


@dataclass
class TrafficConfig:
    """Other vehicles (highway-env IDM/MOBIL vehicles); ranges are sampled once per episode."""

    density_range: tuple[float, float] = (0.6, 1.4)  # multiplier on each scenario's nominal vehicle count
    truck_fraction: float = 0.12  # share of spawned vehicles that are trucks
    car_lwh_m: tuple[float, float, float] = (5.0, 2.0, 1.6)  # highway-env's car footprint, plus a height
    truck_lwh_m: tuple[float, float, float] = (8.5, 2.5, 3.2)
    remove_crashed_after_s: float = 3.0  # crashed traffic (not touching the ego) is towed away after this
    # Stop events: each vehicle brakes to a standstill at random times (on average this many times per minute
    # of driving, at stop_decel_mps2) and stands for a time drawn from stop_duration_s, as a car stopping to
    # turn, park or yield does. 0 = never (highway-env's IDM alone).
    stop_rate_per_min: float = 0.0
    stop_duration_s: tuple[float, float] = (2.0, 8.0)
    stop_decel_mps2: float = 4.0

    def __post_init__(self) -> None:
        if self.stop_rate_per_min < 0:
            raise ValueError(f"traffic.stop_rate_per_min: got {self.stop_rate_per_min!r}, expected >= 0")
        if len(tuple(self.stop_duration_s)) != 2:
            raise ValueError(f"traffic.stop_duration_s: got {self.stop_duration_s!r}, expected [low, high] seconds")
        lo, hi = (float(v) for v in self.stop_duration_s)
        if not 0.0 < lo <= hi:
            raise ValueError(f"traffic.stop_duration_s: got {[lo, hi]}, expected [low, high] with 0 < low <= high")
        self.stop_duration_s = (lo, hi)
        if not self.stop_decel_mps2 > 0:
            raise ValueError(f"traffic.stop_decel_mps2: got {self.stop_decel_mps2!r}, expected > 0")


@dataclass
class ExpertConfig:
    """Gains and limits of the rule-based expert that drives the ego."""

    # Lateral: pure pursuit on the route's lane centre line.
    lookahead_min_m: float = 4.0
    lookahead_time_s: float = 0.6  # lookahead = clip(min + time * speed, min, max)
    lookahead_max_m: float = 16.0
    # Longitudinal: IDM (Treiber et al.) towards a target speed.
    comfort_accel_mps2: float = 2.0
    comfort_decel_mps2: float = 3.0
    max_decel_mps2: float = 7.0
    time_gap_s: float = 1.4
    min_gap_m: float = 3.0  # bumper-to-bumper gap at standstill
    idm_delta: float = 4.0
    max_lateral_accel_mps2: float = 2.0  # curve speed: v <= sqrt(a_lat / curvature)
    speed_preview_m: float = 35.0  # curvature and goal are looked at this far ahead
    corridor_margin_m: float = 0.5  # extra clearance on each side of the ego when checking the path
    path_check_m: float = 60.0  # vehicles on the path are searched this far ahead
    crossing_check_m: float = 30.0  # moving vehicles predicted to enter this much of the path are braked for
    crossing_horizon_s: float = 2.5
    # Yielding at junctions and merges.
    yield_horizon_s: float = 7.0  # how far ahead other vehicles' routes are predicted (constant speed)
    yield_clearance_m: float = 0.6  # lateral margin between the two cars' sides for a conflict
    yield_margin_s: float = 1.5  # a priority car within this time of the ego's passage of a point conflicts
    yield_stop_m: float = 1.5  # the front bumper stops this far before the yield line
    commit_after_m: float = 1.0  # once this far past the stop line, the ego clears the junction instead
    merge_gap_front_s: float = 1.0  # accepted gap in the target lane (time headway), ahead and behind
    merge_gap_rear_s: float = 1.0
    goal_stop_m: float = 3.0  # stop this far before the route's end (within WorldConfig.goal_tolerance_m)
    stopped_speed_mps: float = 0.5
    # What the student can perceive (LEAD, arXiv 2512.20563): a privileged expert yields to and brakes for
    # cars far beyond what a low-resolution camera shows, so its student cannot learn why it slowed.
    # perception_range_m > 0 makes the expert yield and brake for crossing traffic only within that distance
    # of the ego; junction_approach_mps > 0 makes it approach a yield line at no more than that speed (from
    # junction_approach_m before it), so that a car that comes into sight is still seen in time.
    perception_range_m: float = 0.0
    junction_approach_mps: float = 0.0
    junction_approach_m: float = 25.0
    # max_cruise_mps > 0 caps the episode's cruise speed (the driver's desired speed): a student that cannot
    # see a slower car far ahead follows it more safely at a cruise speed it will not out-run by much.
    max_cruise_mps: float = 0.0

    def __post_init__(self) -> None:
        if not self.max_cruise_mps >= 0.0:
            raise ValueError(f"expert.max_cruise_mps: got {self.max_cruise_mps!r}, expected 0 (off) or a speed > 0")


@dataclass
class CameraConfig:
    """The six-camera pinhole renderer."""

    width: int = 256
    height: int = 144
    near_m: float = 0.3  # polygons are clipped against z > near before projection
    far_m: float = 120.0  # geometry beyond this distance from the ego is not drawn
    lane_sample_m: float = 2.0  # curved lanes are cut into segments of this length
    straight_sample_m: float = 10.0
    marking_width_m: float = 0.15
    dash_length_m: float = 3.0  # highway-env's stripe length
    dash_period_m: float = 7.33  # stripe length + highway-env's stripe spacing


@dataclass
class WorldConfig:
    """The embedded world: time steps, episode limits, and the parts above."""

    dt_s: float = 0.1  # simulation step (10 Hz)
    keyframe_every: int = 5  # keyframes every 5 steps = 2 Hz
    warmup_s: float = 2.0  # the expert drives this long inside reset(), so the pose history is real
    max_time_s: float = 60.0  # episodes end (timeout) after this long
    goal_tolerance_m: float = 5.0  # goal reached within this distance of the route's end
    off_route_limit_m: float = 30.0  # episode ends beyond this distance from the route (as Bench2Drive)
    # Route target points (Observation.route_target): the route is handed to the car as points this far
    # apart along the route's centre line, as a navigation system or the leaderboard's global plan would;
    # the route planner counts a point as reached within route_target_min_m (TransFuser++: 7.5 m).
    route_point_spacing_m: float = 10.0
    route_target_min_m: float = 7.5
    route_target_max_m: float = 50.0
    ego: EgoDynamicsConfig = field(default_factory=EgoDynamicsConfig)
    traffic: TrafficConfig = field(default_factory=TrafficConfig)
    expert: ExpertConfig = field(default_factory=ExpertConfig)
    camera: CameraConfig = field(default_factory=CameraConfig)

    def __post_init__(self) -> None:
        if not 0.0 < self.dt_s <= 0.5:
            raise ValueError(f"world.dt_s: got {self.dt_s!r}, expected a step in (0, 0.5] seconds")
        if self.keyframe_every < 1:
            raise ValueError(f"world.keyframe_every: got {self.keyframe_every!r}, expected an integer >= 1")
        check_image_size("world.camera", self.camera.width, self.camera.height)
        if not 0.0 < self.route_point_spacing_m <= self.route_target_max_m:
            raise ValueError(
                f"world.route_point_spacing_m: got {self.route_point_spacing_m!r}, expected a spacing in "
                f"(0, route_target_max_m = {self.route_target_max_m}] metres"
            )


def check_image_size(name: str, width: object, height: object) -> None:
    """Raise ValueError unless ``width`` x ``height`` is a usable render size (integers, 16..4096)."""
    for what, v in (("width", width), ("height", height)):
        if isinstance(v, bool) or not isinstance(v, int) or not 16 <= v <= 4096:
            raise ValueError(f"{name}.{what}: got {v!r}, expected an integer number of pixels in [16, 4096]")


def teacher_world() -> WorldConfig:
    """The world of recorded training data: the expert there is a teacher that yields to and brakes for
    crossing traffic only within 50 m of the ego (what the tiny model's 128x72 cameras show as more than a
    few pixels) and approaches yield lines at 5 m/s, so that a car coming into sight is still seen in time
    (LEAD's perception-limited, cautious expert). The closed-loop expert baseline stays privileged."""
    return WorldConfig(expert=ExpertConfig(perception_range_m=50.0, junction_approach_mps=5.0))


@dataclass
class DatasetConfig:
    """How ``make_embedded`` records scenes."""

    # 40 s at 2 Hz. Closed-loop routes last 40-60 s, and 20 s scenes never showed their later phases: on the
    # dev suite 40 s scenes raised success from 25 % to 54 % and cut timeouts from 9 to 1 (BENCHMARKS.md,
    # closed-loop driving, round 4).
    keyframes_per_scene: int = 80
    val_fraction: float = 0.2  # share of scenes in the "val" split (by scene, seeded)
    annotation_range_m: float = 80.0  # agents farther than this from the ego are not annotated
    max_attempts: int = 4  # a scene whose expert run collides or stalls is re-drawn with another seed
    max_standstill_s: float = 15.0  # standing this long (not at the goal) counts as stalled (traffic gridlock)
    # DART-style noise injection, training scenes only: in a share of keyframe intervals the executed
    # control is the expert's plus a zero-mean offset (steer, and throttle or brake), so the data shows
    # the expert recovering from lane and speed errors. Over training-range scenes, 0.3 / 0.2 puts the 90th
    # percentile of the ego's distance from the route at 1.2 m (the expert alone: 0.24 m; 0.25 / 0.06: 0.39
    # m), so the data covers the offsets at which a car leaves its lane.
    perturb_prob: float = 0.3  # share of keyframe intervals driven with perturbed control
    perturb_steer: float = 0.2  # max |steer offset| (canonical steer units, [-1, 1] = full lock)
    perturb_pedal: float = 0.3  # max throttle (positive) or brake (negative) offset
    # Label every keyframe of a noisy scene with the expert's own plan from that state (a counterfactual
    # rollout, written as the dataset's expert plans), not with the recorded future that holds later noise.
    expert_plan_labels: bool = True
    # Counterfactual obstacles (sim/obstacles.py): this share of the training scenes is written a second
    # time with every keyframe branched: a car stands on the route ahead, its rear a gap drawn from
    # obstacle_gap_m (metres, never under the expert's hard-braking stopping gap) ahead of the ego's front,
    # and the label is the expert's plan from there. Ego state, history and the rest of the scene are the
    # recorded ones, so only the car explains the braking. 0 = no obstacle scenes.
    obstacle_scene_fraction: float = 0.0
    obstacle_gap_m: tuple[float, float] = (4.0, 50.0)
    # The standing car is turned from its lane by an angle drawn from [-obstacle_yaw_deg, obstacle_yaw_deg]
    # (0: facing along the lane, no draw). 90 includes cars standing across the route, as a crossing car that
    # stopped in a junction shows itself (BENCHMARKS.md, closed-loop round 14: tried for the perception stage).
    obstacle_yaw_deg: float = 0.0
    # False: the gap is drawn from obstacle_gap_m as given, also closer than the expert can stop (data for the
    # perception stage, whose labels are free distances; the expert's plans in such twins end in a crash).
    obstacle_stopping_floor: bool = True
    # The world the scenes are recorded in; its expert is the teacher (teacher_world).
    world: WorldConfig = field(default_factory=teacher_world)

    def __post_init__(self) -> None:
        if self.keyframes_per_scene < 1:
            raise ValueError(f"dataset.keyframes_per_scene: got {self.keyframes_per_scene!r}, expected >= 1")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"dataset.val_fraction: got {self.val_fraction!r}, expected a fraction in [0, 1)")
        if self.max_attempts < 1:
            raise ValueError(f"dataset.max_attempts: got {self.max_attempts!r}, expected >= 1")
        if not 0.0 <= self.perturb_prob <= 1.0:
            raise ValueError(f"dataset.perturb_prob: got {self.perturb_prob!r}, expected a probability in [0, 1]")
        if not 0.0 <= self.obstacle_scene_fraction <= 1.0:
            raise ValueError(
                f"dataset.obstacle_scene_fraction: got {self.obstacle_scene_fraction!r}, expected a fraction in [0, 1]"
            )
        gaps = tuple(self.obstacle_gap_m)
        if len(gaps) != 2 or not 0.0 < float(gaps[0]) <= float(gaps[1]):
            raise ValueError(
                f"dataset.obstacle_gap_m: got {self.obstacle_gap_m!r}, expected [low, high] metres with 0 < low <= high"
            )
        self.obstacle_gap_m = (float(gaps[0]), float(gaps[1]))
        if not 0.0 <= self.obstacle_yaw_deg <= 180.0:
            raise ValueError(f"dataset.obstacle_yaw_deg: got {self.obstacle_yaw_deg!r}, expected degrees in [0, 180]")
        if not (0.0 <= self.perturb_steer <= 1.0 and 0.0 <= self.perturb_pedal <= 1.0):
            raise ValueError(
                f"dataset.perturb_steer/perturb_pedal: got {self.perturb_steer!r}/{self.perturb_pedal!r}, "
                "expected values in [0, 1]"
            )
