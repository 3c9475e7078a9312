"""The core of the embedded world: highway-env roads and traffic, the ego car, its route, collisions and pose log.

The world is the state that everything else acts on; it imports none of the scenarios, the expert, the
renderer or the dataset code. A scenario (``TrafficScenario``, see scenarios.py) hands it the road and
route of an episode and keeps its traffic flowing; a driver (the expert, a policy) chooses each step's
Control; embedded.py composes world, scenarios, expert and cameras into ``EmbeddedWorld``.

Core API (all poses in the right-handed global frame: x east, y north, z up, yaw CCW radians; the ego
pose is its rear axle, the nuScenes ego-frame origin):

    world = World(WorldConfig())
    world.start(scenario, seed=3)                 # a TrafficScenario; deterministic for (scenario, seed)
    while world.in_warmup:                        # time starts at -warmup_s: some driver warms it up
        world.step(Control(throttle=0.3))
    info = world.step(control)                    # one dt step under a drive_vla.types.Control
    world.ego_pose, world.ego_speed_mps, world.ego_state()   # (x, y, yaw), m/s, EgoState(source="sim")
    world.pose_log(), world.history()             # logged poses; past poses in the current ego frame
    world.agents()                                # list[Agent]: id, category, xyz, lwh, yaw, velocity
    world.agent_boxes()                           # Boxes of the agents in the current ego frame
    world.route_completion, world.distance_from_route_m
    world.collision, world.off_road, world.goal_reached, world.done, world.done_reason
    world.command, world.instruction              # the route's navigation command and sentence now
    world.route_target()                          # (2, 2) the next route points in the ego frame
    world.speed_limit_mps()                       # the cruise speed the road allows here
    world.spawn(...), world.despawn(vehicle)      # traffic management, for scenarios

``step`` returns a dict with "time_s", "route_completion", "collision" (None | "vehicle" | "static"),
"off_road", "off_route_m", "speed_mps", "goal_reached", "done", "reason" (None | "goal" | "collision" |
"off_route" | "timeout"), "keyframe" (the new time is on the 2 Hz keyframe grid) and "control". The
world keeps stepping after ``done`` (the flags stay set), so fixed-length recordings are possible.
Traffic, roads and collision checks are highway-env's; its pygame viewer is never created.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from highway_env import utils as he_utils
from highway_env.road.road import LaneIndex, Road, RoadNetwork
from highway_env.vehicle.objects import Obstacle

from drive_vla.data.labels import instruction_for_command
from drive_vla.geometry import (
    global_points_to_local,
    global_poses_to_local,
    global_to_sim,
    sim_steering_from_canonical,
    sim_to_global,
    wrap_angle,
)
from drive_vla.route_planner import RoutePlanner, sample_polyline
from drive_vla.sim.config import WorldConfig
from drive_vla.sim.route import LaneCache, Route
from drive_vla.sim.vehicles import EgoVehicle, TrafficVehicle, make_traffic
from drive_vla.types import (
    HISTORY_STEPS,
    JUNCTION_HORIZON_M,
    ROUTE_TARGET_POINTS,
    STEP_DT_S,
    Boxes,
    Command,
    Control,
    EgoState,
)

COMMAND_LOOKAHEAD_M = 30.0  # the route's turn becomes the navigation command this far before the junction


@dataclass(frozen=True)
class Agent:
    """Another road user as a box in the global frame.

    Attributes:
        instance_id: stable for the episode.
        category: nuScenes category ("vehicle.car", "vehicle.truck", "movable_object.barrier").
        xyz: (3,) box centre, metres (z = half the height).
        lwh: (3,) length, width, height, metres.
        yaw_rad: heading, CCW.
        velocity_xy: (2,) global velocity, m/s.
        color_rgb: colour it is rendered with.
    """

    instance_id: str
    category: str
    xyz: np.ndarray
    lwh: np.ndarray
    yaw_rad: float
    velocity_xy: np.ndarray
    color_rgb: tuple[int, int, int]

    @property
    def speed_mps(self) -> float:
        return float(np.hypot(*self.velocity_xy))


_BARRIER_RGB = (235, 120, 40)


@dataclass
class EpisodeSetup:
    """What a scenario hands the world at the start of an episode: the road, the route (starting where
    the ego starts), the ego's initial and desired speeds, and a sentence describing the episode."""

    road: Road
    route: Route
    ego_speed_mps: float
    desired_speed_mps: float
    description: str


class TrafficScenario(Protocol):
    """What the world asks of a scenario (scenarios.py holds the suite), and the road rules drivers read."""

    name: str
    idm: dict[str, float]  # IDM parameters of the traffic it spawns (highway-env's defaults where empty)

    def setup(self, rng: np.random.Generator, world: World) -> EpisodeSetup:
        """The episode's road and route, drawn from ``rng`` (the world's ``density`` is already drawn)."""
        ...

    def populate(self, world: World, rng: np.random.Generator) -> None:
        """Place the initial traffic (the ego is already on the road)."""
        ...

    def maintain(self, world: World, rng: np.random.Generator) -> None:
        """Called every step: spawn traffic at the network's entries, remove vehicles that left."""
        ...

    def priority(self, network: RoadNetwork, lane: LaneIndex) -> int:
        """Right-of-way level of a lane (higher goes first)."""
        ...

    def is_junction(self, lane: LaneIndex) -> bool:
        """Whether a lane lies inside a junction (where crossing traffic may conflict)."""
        ...


class World:
    """The core of the embedded world (see the module docstring for the API)."""

    def __init__(self, config: WorldConfig | None = None):
        self.cfg = config or WorldConfig()
        if not isinstance(self.cfg, WorldConfig):
            raise ValueError(f"config: got {type(self.cfg).__name__}, expected a WorldConfig")
        self.scenario: TrafficScenario | None = None

    # ------------------------------------------------------------------ episode

    def start(self, scenario: TrafficScenario, seed: int) -> None:
        """Start an episode of ``scenario``; everything random is drawn from ``seed``.

        Time starts at ``-warmup_s``: a driver steps the world through the warm-up (``in_warmup``), so the
        pose history at time 0, the first keyframe, is real.
        """
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed: got {seed!r}, expected a non-negative integer")
        cfg = self.cfg
        setup_rng, road_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(2))
        self.scenario, self.seed = scenario, int(seed)
        self.density = float(setup_rng.uniform(*cfg.traffic.density_range))
        setup = scenario.setup(setup_rng, self)
        self.road = setup.road
        self.road.np_random = road_rng
        self.lanes = _lane_cache(self.road.network)
        self.route: Route = setup.route.build(self.lanes)
        self.description = setup.description
        lane = self.road.network.get_lane(self.route.lanes[0])
        s0 = self.route.start_s
        self.ego = EgoVehicle(self.road, lane.position(s0, 0.0), lane.heading_at(s0), setup.ego_speed_mps, cfg.ego)
        self.road.vehicles.append(self.ego)
        self.desired_speed_mps = setup.desired_speed_mps  # the scenario's cruise speed for the ego's driver
        self._rng = setup_rng
        self._next_id = 0
        self._all_lanes = self.road.network.lanes_list()
        self.route_arc, self.distance_from_route_m, self.route_piece = 0.0, 0.0, 0
        self.route_planner = RoutePlanner(cfg.route_target_min_m, cfg.route_target_max_m)
        self.route_planner.set_route(
            [
                sim_to_global(x, y, 0.0)[:2]
                for x, y in sample_polyline(self.route.guidance_xy(self.lanes), cfg.route_point_spacing_m)
            ]
        )
        self._track_route()
        scenario.populate(self, setup_rng)
        self.collision: str | None = None
        self.collision_with: str | None = None
        self.collision_detail: dict | None = None  # geometry of the first contact (see _check_collision)
        self._speeds_before: dict[int, float] = {}
        self.goal_reached = False
        self.done_reason: str | None = None
        self._steps = -int(round(cfg.warmup_s / cfg.dt_s))
        self._log: list[tuple[float, float, float, float, float, float, float]] = []  # t, x, y, yaw, v, a, steer
        self._last_control = Control()
        self._record()

    def step(self, control: Control) -> dict:
        """Advance one ``dt_s`` step under ``control``. Returns the step facts (module docstring)."""
        if self.scenario is None:
            raise RuntimeError("World.step: call start(scenario, seed) first")
        if not isinstance(control, Control):
            raise ValueError(f"control: got {type(control).__name__}, expected a drive_vla.types.Control")
        ego, cfg = self.ego, self.cfg
        accel = self._accel_from(control)
        ego.command(sim_steering_from_canonical(control.steer * cfg.ego.max_steer_rad), accel)
        self.road.act()
        if self.collision is None:  # highway-env stops crashed cars: keep the speeds the contact happened at
            self._speeds_before = {id(v): float(v.speed) for v in self.road.vehicles}
        self.road.step(cfg.dt_s)
        self._steps += 1
        self._last_control = control
        self._track_route()
        self._check_collision()
        self.scenario.maintain(self, self._rng)
        self._tow_crashed()
        self._record()
        return self.info()

    def info(self) -> dict:
        """The facts of the current step (see the module docstring)."""
        cfg = self.cfg
        if not self.goal_reached and self.route.length_m - self.route_arc <= cfg.goal_tolerance_m:
            self.goal_reached = True
        if self.done_reason is None and self._steps >= 0:
            if self.collision is not None:
                self.done_reason = "collision"
            elif self.goal_reached:
                self.done_reason = "goal"
            elif self.distance_from_route_m > cfg.off_route_limit_m:
                self.done_reason = "off_route"
            elif self.time_s >= cfg.max_time_s - 1e-9:
                self.done_reason = "timeout"
        return {
            "time_s": self.time_s,
            "route_completion": self.route_completion,
            "collision": self.collision,
            "off_road": self.off_road,
            "off_route_m": self.distance_from_route_m,
            "speed_mps": self.ego_speed_mps,
            "goal_reached": self.goal_reached,
            "done": self.done,
            "reason": self.done_reason,
            "keyframe": self.is_keyframe,
            "control": self._last_control,
        }

    # ------------------------------------------------------------------ ego

    @property
    def time_s(self) -> float:
        return self._steps * self.cfg.dt_s

    @property
    def in_warmup(self) -> bool:
        """Before time 0: the warm-up steps that give the first keyframe a real pose history."""
        return self._steps < 0

    @property
    def is_keyframe(self) -> bool:
        return self._steps >= 0 and self._steps % self.cfg.keyframe_every == 0

    @property
    def ego_pose(self) -> tuple[float, float, float]:
        """(x, y, yaw) of the ego frame's origin (rear axle) in the global frame."""
        x, y, yaw = sim_to_global(*self.ego.position, self.ego.heading)
        c = self.cfg.ego.center_ahead_m
        return x - c * math.cos(yaw), y - c * math.sin(yaw), yaw

    @property
    def ego_speed_mps(self) -> float:
        return float(self.ego.speed)

    def ego_state(self) -> EgoState:
        """Speed, acceleration (longitudinal, lateral), yaw rate and normalised steer, source "sim"."""
        t, x, y, yaw, v, a, steer = self._log[-1]
        yaw_rate = 0.0
        if len(self._log) > 1:
            yaw_rate = float(wrap_angle(yaw - self._log[-2][3])) / self.cfg.dt_s
        accel = np.array([a, v * yaw_rate], dtype=np.float32)
        return EgoState(
            speed_mps=v, accel_mps2=accel, yaw_rate_rps=float(np.clip(yaw_rate, -10, 10)), steer=steer, source="sim"
        )

    def pose_log(self) -> np.ndarray:
        """(T, 4) [time_s, x, y, yaw] of every step so far (warm-up included, negative times)."""
        return np.array([r[:4] for r in self._log])

    def history(self, steps: int = HISTORY_STEPS, dt_s: float = STEP_DT_S) -> np.ndarray:
        """(steps, 3) past poses at t - steps*dt ... t - dt in the current ego frame, oldest first."""
        log = self.pose_log()
        times = self.time_s - dt_s * np.arange(steps, 0, -1)
        idx = np.clip(np.searchsorted(log[:, 0], times - 1e-6), 0, len(log) - 1)
        return global_poses_to_local(log[idx, 1:4], self.ego_pose).astype(np.float32)

    # ------------------------------------------------------------------ route

    @property
    def route_completion(self) -> float:
        if self.goal_reached:
            return 1.0
        return float(np.clip(self.route_arc / self.route.length_m, 0.0, 1.0))

    @property
    def command(self) -> Command:
        """The route's maneuver within COMMAND_LOOKAHEAD_M of it and until it ends; else STRAIGHT."""
        r = self.route
        if r.maneuver_piece is None or r.maneuver == Command.STRAIGHT:
            return Command.STRAIGHT
        start = r.piece_arc(r.maneuver_piece) - COMMAND_LOOKAHEAD_M
        end = r.piece_arc(min(r.maneuver_end_piece + 1, len(r.lanes) - 1))
        return r.maneuver if start <= self.route_arc <= end else Command.STRAIGHT

    @property
    def instruction(self) -> str:
        """The route's instruction until its maneuver is done, then "keep following the road"."""
        r = self.route
        if r.maneuver_piece is not None and self.route_arc > r.piece_arc(
            min(r.maneuver_end_piece + 1, len(r.lanes) - 1)
        ):
            return instruction_for_command(Command.STRAIGHT)
        return r.instruction

    def speed_limit_mps(self) -> float:
        """The speed the road allows the ego here, m/s: the episode's cruise speed, capped by the limit of the
        route's current lane (what the expert aims for before curves and traffic; a map gives it)."""
        limit = self.road.network.get_lane(self.route.lanes[self.route_piece]).speed_limit
        return float(min(self.desired_speed_mps, limit if limit else math.inf))

    def to_yield_line_m(self) -> float | None:
        """Distance along the route from the ego's front to the route's yield line (the entry of its
        junction or roundabout), metres; negative once the front has crossed it, None when the route has
        no yield line or the ego has left the lane that ends at it."""
        r = self.route
        if r.stop_piece is None or self.route_piece > r.stop_piece:
            return None
        return float(r.piece_arc(r.stop_piece) - self.route_arc - self.cfg.ego.length_m / 2)

    def junction_m(self) -> float:
        """``Observation.junction_m``: the distance to the yield line ahead, clipped to [0,
        JUNCTION_HORIZON_M]; the horizon once it is behind the ego or when the route has none."""
        to_line = self.to_yield_line_m()
        if to_line is None or to_line < 0.0:
            return JUNCTION_HORIZON_M
        return float(min(to_line, JUNCTION_HORIZON_M))

    def route_target(self) -> np.ndarray:
        """(ROUTE_TARGET_POINTS, 2) float32: the route planner's next points in the current ego frame."""
        return global_points_to_local(self.route_planner.targets(ROUTE_TARGET_POINTS), self.ego_pose).astype(np.float32)

    @property
    def off_road(self) -> bool:
        """The ego's centre is on no lane of the network."""
        p = self.ego.position
        return not any(lane.on_lane(p) for lane in self._all_lanes)

    @property
    def done(self) -> bool:
        return self.done_reason is not None

    def shift_ego_sideways(self, offset_m: float) -> None:
        """Move the ego ``offset_m`` metres to its left (negative: right), its pose history with it, as if it
        had driven that far off its line all along (for probes of how a planner corrects an offset)."""
        if not math.isfinite(offset_m):
            raise ValueError(f"offset_m: got {offset_m!r}, expected finite metres")
        yaw = self.ego_pose[2]
        dx, dy = -offset_m * math.sin(yaw), offset_m * math.cos(yaw)  # global frame: left of the heading
        sx, sy, _ = global_to_sim(dx, dy, 0.0)
        self.ego.position = self.ego.position + np.array([sx, sy])
        self._log = [(t, x + dx, y + dy, *rest) for t, x, y, *rest in self._log]
        self._track_route()

    # ------------------------------------------------------------------ agents

    def traffic(self) -> list[TrafficVehicle]:
        """The other vehicles (highway-env objects, sim plane)."""
        return [v for v in self.road.vehicles if v is not self.ego]

    def agents(self) -> list[Agent]:
        """Other vehicles and barriers as global boxes."""
        out = []
        for v in self.traffic():
            x, y, yaw = sim_to_global(*v.position, v.heading)
            out.append(
                Agent(
                    v.instance_id,
                    v.category,
                    np.array([x, y, v.height_m / 2]),
                    np.array([v.LENGTH, v.WIDTH, v.height_m]),
                    yaw,
                    v.speed * np.array([math.cos(yaw), math.sin(yaw)]),
                    v.color_rgb,
                )
            )
        for i, o in enumerate(self.road.objects):
            if isinstance(o, Obstacle):
                x, y, yaw = sim_to_global(*o.position, o.heading)
                lwh = np.array([o.LENGTH, o.WIDTH, 1.0])
                bid = getattr(o, "instance_id", f"barrier-{i}")
                out.append(
                    Agent(bid, "movable_object.barrier", np.array([x, y, 0.5]), lwh, yaw, np.zeros(2), _BARRIER_RGB)
                )
        return out

    def agent_boxes(self, agents: list[Agent] | None = None) -> Boxes:
        """The agents as Boxes in the current ego frame."""
        agents = self.agents() if agents is None else agents
        if not agents:
            return Boxes.empty()
        poses = np.array([[a.xyz[0], a.xyz[1], a.yaw_rad] for a in agents])
        local = global_poses_to_local(poses, self.ego_pose)
        xyz = np.concatenate([local[:, :2], np.array([[a.xyz[2]] for a in agents])], axis=1)
        return Boxes(
            xyz.astype(np.float32),
            np.array([a.lwh for a in agents], dtype=np.float32),
            local[:, 2].astype(np.float32),
            tuple(a.category for a in agents),
            tuple(a.instance_id for a in agents),
        )

    # ------------------------------------------------------------------ traffic management (scenarios)

    def spawn(
        self,
        lane: LaneIndex,
        longitudinal_m: float,
        speed_mps: float,
        destination: str | None,
        idm: dict[str, float] | None = None,
        clearance_m: float | None = None,
    ) -> TrafficVehicle | None:
        """Add a traffic vehicle unless another vehicle (or the ego) is within ``clearance_m`` of the spot."""
        lane_obj = self.road.network.get_lane(lane)
        if not -5.0 <= longitudinal_m <= lane_obj.length:
            return None
        pos = lane_obj.position(longitudinal_m, 0.0)
        clearance = 12.0 + 0.8 * speed_mps if clearance_m is None else clearance_m
        for v in self.road.vehicles:
            if np.linalg.norm(v.position - pos) < clearance + (12.0 if v is self.ego else 0.0):
                return None
        cfg = self.cfg.traffic
        vid = f"{self.scenario.name}-{self.seed}-{self._next_id:03d}"
        v = make_traffic(
            self.road,
            lane,
            longitudinal_m,
            speed_mps,
            self._rng,
            cfg,
            vid,
            self._next_id,
            destination,
            idm or self.scenario.idm,
        )
        self._next_id += 1
        self.road.vehicles.append(v)
        return v

    @property
    def next_vehicle_index(self) -> int:
        """The index (id suffix and colour) the next spawned vehicle gets."""
        return self._next_id

    def add_vehicle(self, vehicle: TrafficVehicle) -> None:
        """Put a vehicle made with ``make_traffic`` on the road as it is (no clearance check)."""
        self.road.vehicles.append(vehicle)

    def despawn(self, vehicle: TrafficVehicle) -> None:
        if vehicle in self.road.vehicles and vehicle is not self.ego:
            self.road.vehicles.remove(vehicle)

    # ------------------------------------------------------------------ internals

    def _accel_from(self, control: Control) -> float:
        e = self.cfg.ego
        a = control.throttle * e.max_accel_mps2 - control.brake * e.max_brake_mps2
        return a - (e.coast_decel_mps2 if self.ego.speed > 0.05 else 0.0)

    def _track_route(self) -> None:
        arc, dist = self.route.project(self.ego.position, self.route_arc)
        self.route_arc = max(arc, self.route_arc) if dist < 8.0 else arc
        self.distance_from_route_m = dist
        self.route_piece = self.route.piece_at(self.route_arc)
        self.route_planner.advance(self.ego_pose[:2])
        # Keep highway-env's view of the ego's plan current, so traffic (and the regulation) predict it.
        ahead = self.route.lanes[self.route_piece :]
        self.ego.route = [self.ego.lane_index] + ahead[1:] if ahead else [self.ego.lane_index]
        self.ego.target_lane_index = self.ego.lane_index

    def _check_collision(self) -> None:
        if self.collision is not None or not self.ego.crashed:
            return
        # highway-env flags a crash when the boxes intersect or will within the step (then pushes them
        # apart), so the other party is the one that touches the ego or, failing that, the nearest.
        others = [o for o in list(self.road.vehicles) + list(self.road.objects) if o is not self.ego]
        if not others:
            self.collision = "vehicle"
            return
        touching = [
            o
            for o in others
            if he_utils.are_polygons_intersecting(self.ego.polygon(), o.polygon(), np.zeros(2), np.zeros(2))[0]
        ]
        o = touching[0] if touching else min(others, key=lambda o: np.linalg.norm(o.position - self.ego.position))
        self.collision = "static" if isinstance(o, Obstacle) else "vehicle"
        self.collision_with = getattr(o, "instance_id", "barrier")
        ego = self.ego
        c, s = math.cos(ego.heading), math.sin(ego.heading)
        rel = o.position - ego.position
        dx, dy_sim = float(c * rel[0] + s * rel[1]), float(-s * rel[0] + c * rel[1])
        turn = (float(getattr(o, "heading", ego.heading)) - ego.heading + math.pi) % (2 * math.pi) - math.pi
        self.collision_detail = {  # canonical ego frame (y left, CCW positive; the sim plane has y down)
            "with": self.collision_with,
            "ahead_m": round(dx, 2),
            "left_m": round(-dy_sim, 2),
            "heading_rad": round(-turn, 3),
            "ego_speed_mps": round(self._speeds_before.get(id(ego), float(ego.speed)), 2),
            "other_speed_mps": round(self._speeds_before.get(id(o), float(getattr(o, "speed", 0.0))), 2),
        }

    def _tow_crashed(self) -> None:
        for v in self.traffic():
            if v.crashed:
                v.crashed_time_s += self.cfg.dt_s
                if v.crashed_time_s >= self.cfg.traffic.remove_crashed_after_s and self.collision_with != v.instance_id:
                    self.despawn(v)

    def _record(self) -> None:
        x, y, yaw = self.ego_pose
        v = float(self.ego.speed)
        accel = (v - self._log[-1][4]) / self.cfg.dt_s if self._log else 0.0  # what the car did, not the command
        self._log.append((self.time_s, x, y, yaw, v, accel, float(self._last_control.steer)))


_LANE_CACHES: dict[int, LaneCache] = {}


def _lane_cache(network) -> LaneCache:
    key = id(network)
    if key not in _LANE_CACHES or _LANE_CACHES[key].network is not network:
        _LANE_CACHES[key] = LaneCache(network)
    return _LANE_CACHES[key]
