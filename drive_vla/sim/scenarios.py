"""Scenario suite of the embedded world: road networks from highway-env, seeded routes and traffic.

Each scenario builds a highway-env road (its own road-network construction), picks the ego's start and
route from a seeded generator, places initial traffic and keeps traffic flowing while the episode runs.
Scenario types: ``highway`` (multi-lane cruising), ``merge`` (on-ramp onto a two-lane highway, or the
highway beside it), ``intersection`` (four-way junction, exits left / straight / right) and
``roundabout`` (two-lane roundabout, first / second / third exit). Scenarios act on the core ``World``
(world.py, whose ``TrafficScenario`` they implement) through its ``spawn``, ``despawn`` and ``traffic``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from highway_env.envs.intersection_env import IntersectionEnv
from highway_env.envs.merge_env import MergeEnv
from highway_env.envs.roundabout_env import RoundaboutEnv
from highway_env.road.lane import StraightLane
from highway_env.road.road import LaneIndex, Road, RoadNetwork
from highway_env.vehicle.objects import Obstacle

from drive_vla.sim.roads import FastRegulatedRoad, FastRoad
from drive_vla.sim.route import Route
from drive_vla.sim.world import EpisodeSetup, World
from drive_vla.types import Command


def _env_road(env_cls: type, **config: object) -> Road:
    """Run one highway-env environment's own road construction (``_make_road``) and return its road.

    Only the road-building method runs, on a bare instance: no reset, no vehicles, no observation or
    action spaces and no pygame viewer. (highway-env 1.12 keeps these networks inside the env classes.)
    """
    env = env_cls.__new__(env_cls)
    env.config = env_cls.default_config()
    env.config.update(config)
    env.np_random = np.random.default_rng(0)
    env._make_road()
    return env.road


_NETWORKS: dict[tuple, tuple[RoadNetwork, list]] = {}


def _cached(key: tuple, build: Callable[[], tuple[RoadNetwork, list]]) -> tuple[RoadNetwork, list]:
    # Networks are static, so one per process; the render geometry cached on them is then reused too.
    if key not in _NETWORKS:
        _NETWORKS[key] = build()
    return _NETWORKS[key]


class Scenario:
    """Base class of the suite's scenarios (a world.TrafficScenario): subclasses set ``name`` and
    implement ``setup``, ``populate`` and ``maintain``."""

    name = ""
    nominal_vehicles = 8
    idm: dict[str, float] = {}

    def setup(self, rng: np.random.Generator, world: World) -> EpisodeSetup:
        raise NotImplementedError

    def populate(self, world: World, rng: np.random.Generator) -> None:
        """Place the initial traffic (the ego is already on the road)."""

    def maintain(self, world: World, rng: np.random.Generator) -> None:
        """Called every step: spawn traffic at the network's entries, remove vehicles that left."""

    def priority(self, network: RoadNetwork, lane: LaneIndex) -> int:
        """Right-of-way level of a lane (higher goes first); highway-env's lane priority by default."""
        return int(network.get_lane(lane).priority)

    def is_junction(self, lane: LaneIndex) -> bool:
        """Whether a lane lies inside a junction (where crossing traffic may conflict)."""
        return False


# ----------------------------------------------------------------------------- highway


class HighwayScenario(Scenario):
    """A straight multi-lane highway (highway-env's ``straight_road_network``) with IDM/MOBIL traffic."""

    name = "highway"
    length_m = 2400.0
    instructions = ("keep following the road", "stay in your lane and follow the highway", "continue along the highway")

    def setup(self, rng, world):
        lanes = int(rng.integers(3, 5))
        net, _ = _cached(
            ("highway", lanes),
            lambda: (RoadNetwork.straight_road_network(lanes, length=self.length_m, speed_limit=30.0), []),
        )
        road = FastRoad(network=net, np_random=rng)
        lane_id = int(rng.integers(lanes))
        desired = float(rng.uniform(20.0, 28.0))
        self.density = world.density
        route = Route(
            [("0", "1", lane_id)],
            start_s=100.0,
            end_s=100.0 + 40.0 * desired + 100.0,
            instruction=str(rng.choice(self.instructions)),
        )
        desc = f"highway, {lanes} lanes, ego in lane {lane_id + 1} from the left, cruising at up to {desired:.0f} m/s"
        return EpisodeSetup(road, route, float(rng.uniform(0.75, 1.0)) * desired, desired, desc)

    def _ego_s(self, world):
        return float(world.road.network.get_lane(("0", "1", 0)).local_coordinates(world.ego.position)[0])

    def populate(self, world, rng):
        lanes = len(world.road.network.graph["0"]["1"])
        s_ego = self._ego_s(world)
        n = int(round(self.density * 3 * lanes))
        for _ in range(4 * n):
            if len(world.road.vehicles) - 1 >= n:
                break
            s = s_ego + float(rng.uniform(-80.0, 220.0))
            world.spawn(("0", "1", int(rng.integers(lanes))), s, float(rng.uniform(18.0, 27.0)), "1")

    def maintain(self, world, rng):
        lanes = len(world.road.network.graph["0"]["1"])
        s_ego = self._ego_s(world)
        lane0 = world.road.network.get_lane(("0", "1", 0))
        for v in list(world.traffic()):
            ds = lane0.local_coordinates(v.position)[0] - s_ego
            if ds < -150.0 or ds > 320.0:
                world.despawn(v)
        want = int(round(self.density * 3 * lanes))
        if len(world.traffic()) < want and rng.random() < 0.5 * world.cfg.dt_s * lanes:
            if rng.random() < 0.7:
                s, speed = s_ego + float(rng.uniform(150.0, 250.0)), float(rng.uniform(18.0, 26.0))
            else:
                s, speed = s_ego - float(rng.uniform(90.0, 130.0)), world.ego.speed + float(rng.uniform(2.0, 5.0))
            world.spawn(("0", "1", int(rng.integers(lanes))), s, speed, "1")


# ----------------------------------------------------------------------------- merge


def _merge_network() -> tuple[RoadNetwork, list]:
    road = _env_road(MergeEnv)
    net = road.network
    # highway-env's merge highway ends 150 m after the merge; extend both lanes so episodes fit on it.
    for i in range(2):
        end = net.get_lane(("c", "d", i))
        start = end.position(end.length, 0.0)
        net.add_lane("d", "e", StraightLane(start, start + np.array([400.0, 0.0]), line_types=end.line_types))
    return net, [o.position.copy() for o in road.objects]


class MergeScenario(Scenario):
    """highway-env's merge: an on-ramp joining a two-lane highway. The ego either takes the ramp and
    merges left, or drives on the highway while ramp traffic merges in."""

    name = "merge"

    def setup(self, rng, world):
        net, self.obstacles = _cached(("merge",), _merge_network)
        road = FastRoad(network=net, np_random=rng, neighbour_vehicles_connected_lanes=True)
        for i, p in enumerate(self.obstacles):
            barrier = Obstacle(road, p)
            barrier.instance_id = f"barrier-{i}"
            road.objects.append(barrier)
        desired = float(rng.uniform(16.0, 20.0))
        self.density = world.density
        if rng.random() < 0.5:
            route = Route(
                [("j", "k", 0), ("k", "b", 0), ("b", "c", 2), ("c", "d", 1), ("d", "e", 1)],
                start_s=float(rng.uniform(30.0, 70.0)),
                end_s=380.0,
                maneuver=Command.LEFT,
                maneuver_piece=2,
                maneuver_end_piece=2,
                merge_to=1,
                instruction="merge onto the highway on the left",
            )
            desc = "on-ramp merging left onto a two-lane highway"
        else:
            lane = int(rng.integers(2))
            route = Route(
                [("a", "b", lane), ("b", "c", lane), ("c", "d", lane), ("d", "e", lane)],
                start_s=float(rng.uniform(30.0, 90.0)),
                end_s=380.0,
                instruction="keep following the road",
            )
            desc = f"two-lane highway past an on-ramp, ego in the {'left' if lane == 0 else 'right'} lane"
        return EpisodeSetup(road, route, float(rng.uniform(0.7, 1.0)) * desired, desired, desc)

    def populate(self, world, rng):
        n = int(round(self.density * 6))
        for _ in range(4 * n):
            if len(world.traffic()) >= n:
                break
            if rng.random() < 0.25:
                world.spawn(("j", "k", 0), float(rng.uniform(0.0, 140.0)), float(rng.uniform(14.0, 19.0)), "e")
            else:
                lane = ("a", "b", int(rng.integers(2)))
                world.spawn(lane, float(rng.uniform(0.0, 225.0)), float(rng.uniform(15.0, 20.0)), "e")

    def maintain(self, world, rng):
        for v in list(world.traffic()):
            if v.lane_index[:2] == ("d", "e") and v.lane.local_coordinates(v.position)[0] > 360.0:
                world.despawn(v)
        rate = 0.6 * self.density
        if rng.random() < rate * world.cfg.dt_s:
            if rng.random() < 0.3:
                world.spawn(("j", "k", 0), 2.0, float(rng.uniform(14.0, 19.0)), "e")
            else:
                world.spawn(("a", "b", int(rng.integers(2))), 2.0, float(rng.uniform(15.0, 20.0)), "e")

    def priority(self, network, lane):
        return 0 if lane[:2] in (("j", "k"), ("k", "b")) or lane == ("b", "c", 2) else 1


# ----------------------------------------------------------------------------- intersection


class IntersectionScenario(Scenario):
    """highway-env's four-way intersection (regulated priorities: the east-west road has the right of way;
    left turns yield to oncoming traffic). The ego approaches from a random arm and turns left, goes
    straight or turns right."""

    name = "intersection"
    idm = {"DISTANCE_WANTED": 7.0, "COMFORT_ACC_MAX": 6.0, "COMFORT_ACC_MIN": -3.0}  # as highway-env's env
    instructions = {
        Command.LEFT: "turn left at the next intersection",
        Command.STRAIGHT: "go straight through the next intersection",
        Command.RIGHT: "turn right at the next intersection",
    }

    def setup(self, rng, world):
        net, _ = _cached(("intersection",), lambda: (_env_road(IntersectionEnv).network, []))
        # No connected-lane neighbour search here: each exit road ends at the node where the opposite entry
        # starts, so highway-env would take oncoming cars for vehicles ahead.
        road = FastRegulatedRoad(network=net, np_random=rng)
        arm = int(rng.integers(4))
        turn = [Command.RIGHT, Command.STRAIGHT, Command.LEFT][int(rng.integers(3))]
        out = {Command.RIGHT: (arm - 1) % 4, Command.STRAIGHT: (arm + 2) % 4, Command.LEFT: (arm + 1) % 4}[turn]
        desired = float(rng.uniform(8.0, 10.0))
        self.density = world.density
        route = Route(
            [(f"o{arm}", f"ir{arm}", 0), (f"ir{arm}", f"il{out}", 0), (f"il{out}", f"o{out}", 0)],
            start_s=float(rng.uniform(25.0, 55.0)),
            end_s=95.0,
            maneuver=turn,
            maneuver_piece=1,
            maneuver_end_piece=1,
            stop_piece=1,
            instruction=self.instructions[turn],
        )
        major = "priority" if arm % 2 else "minor"
        desc = f"four-way intersection, ego on the {major} road, {self.instructions[turn]}"
        return EpisodeSetup(road, route, float(rng.uniform(0.7, 1.0)) * desired, desired, desc)

    def _spawn(self, world, rng, arm, s, speed, straight=False):
        out = (arm + 2) % 4 if straight else int(rng.choice([a for a in range(4) if a != arm]))
        return world.spawn((f"o{arm}", f"ir{arm}", 0), s, speed, f"o{out}", idm=self.idm)

    def populate(self, world, rng):
        n = int(round(self.density * 6))
        for _ in range(4 * n):
            if len(world.traffic()) >= n:
                break
            self._spawn(world, rng, int(rng.integers(4)), float(rng.uniform(0.0, 92.0)), float(rng.uniform(7.0, 9.0)))
        # A crossing vehicle timed to meet the ego at the junction, so right-of-way decisions happen.
        if rng.random() < 0.7:
            ego_arm = int(world.route.lanes[0][0][1:])
            arm = (ego_arm + int(rng.choice([1, 3]))) % 4
            t_meet = (100.0 - world.route.start_s) / max(world.ego.speed, 1.0) + float(rng.uniform(-1.5, 1.5))
            speed = float(rng.uniform(7.0, 9.0))
            self._spawn(world, rng, arm, float(np.clip(100.0 - speed * t_meet, 0.0, 90.0)), speed, straight=True)

    def maintain(self, world, rng):
        for v in list(world.traffic()):
            li = v.lane_index
            if li[0].startswith("il") and li[1].startswith("o") and v.lane.local_coordinates(v.position)[0] > 80.0:
                world.despawn(v)
        # Arrivals at ~0.3 vehicles/s: denser traffic gridlocks highway-env's lane-based IDM in the junction.
        if rng.random() < 0.3 * self.density * world.cfg.dt_s:
            self._spawn(world, rng, int(rng.integers(4)), 2.0, float(rng.uniform(7.0, 9.0)))

    def is_junction(self, lane):
        return lane[0].startswith("ir")


# ----------------------------------------------------------------------------- roundabout

_RING = ("se", "ex", "ee", "nx", "ne", "wx", "we", "sx")
_ARMS = ("s", "e", "n", "w")  # counter-clockwise order of the arms around the ring
RING_SPEED_MPS = 9.0  # ~3.4 m/s^2 lateral on the outer lane


def _roundabout_network() -> tuple[RoadNetwork, list]:
    net = _env_road(RoundaboutEnv).network
    # Give the ring the right of way over the entries, so highway-env's regulation makes entering traffic
    # yield to circulating traffic, and speed limits a car can hold on a 20-24 m radius (highway-env's
    # default 20 m/s would mean ~17 m/s^2 of lateral acceleration).
    for lane in net.lanes_list():
        lane.speed_limit = RING_SPEED_MPS + 3.0
    for i, a in enumerate(_RING):
        for lane in net.graph[a][_RING[(i + 1) % 8]]:
            lane.priority = 1
            lane.speed_limit = RING_SPEED_MPS
    return net, []


class RoundaboutScenario(Scenario):
    """highway-env's two-lane roundabout with four arms; the ego enters from a random arm and takes the
    first (right), second (straight) or third (left) exit."""

    name = "roundabout"
    instructions = {
        Command.RIGHT: "take the first exit at the roundabout, on the right",
        Command.STRAIGHT: "take the second exit at the roundabout, straight ahead",
        Command.LEFT: "take the third exit at the roundabout, on the left",
    }

    def setup(self, rng, world):
        net, _ = _cached(("roundabout",), _roundabout_network)
        road = FastRegulatedRoad(network=net, np_random=rng, neighbour_vehicles_connected_lanes=True)
        arm = int(rng.integers(4))
        exit_n = int(rng.integers(1, 4))
        turn = {1: Command.RIGHT, 2: Command.STRAIGHT, 3: Command.LEFT}[exit_n]
        a, b = _ARMS[arm], _ARMS[(arm + exit_n) % 4]
        ring_start = _RING.index(f"{a}e")
        ring = []
        for k in range(8):
            u, w = _RING[(ring_start + k) % 8], _RING[(ring_start + k + 1) % 8]
            ring.append((u, w, 1))
            if w == f"{b}x":
                break
        lanes = [
            (f"{a}er", f"{a}es", 0),
            (f"{a}es", f"{a}e", 0),
            *ring,
            (f"{b}x", f"{b}xs", 0),
            (f"{b}xs", f"{b}xr", 0),
        ]
        desired = float(rng.uniform(8.0, 11.0))
        self.density = world.density
        route = Route(
            lanes,
            start_s=float(rng.uniform(30.0, 70.0)),
            end_s=70.0,
            maneuver=turn,
            maneuver_piece=2,
            maneuver_end_piece=2 + len(ring),
            stop_piece=2,
            instruction=self.instructions[turn],
        )
        desc = f"two-lane roundabout, entering from the {dict(s='south', e='east', n='north', w='west')[a]}, {route.instruction}"
        return EpisodeSetup(road, route, float(rng.uniform(0.7, 1.0)) * desired, desired, desc)

    def _destination(self, rng):
        return f"{_ARMS[int(rng.integers(4))]}xr"

    def populate(self, world, rng):
        n = int(round(self.density * 6))
        for _ in range(4 * n):
            if len(world.traffic()) >= n:
                break
            if rng.random() < 0.5:
                k = int(rng.integers(8))
                lane = (_RING[k], _RING[(k + 1) % 8], int(rng.integers(2)))
                s = float(rng.uniform(0.0, world.road.network.get_lane(lane).length))
            else:
                a = _ARMS[int(rng.integers(4))]
                lane, s = (f"{a}er", f"{a}es", 0), float(rng.uniform(0.0, 110.0))
            world.spawn(lane, s, float(rng.uniform(7.0, 10.0)), self._destination(rng))

    def maintain(self, world, rng):
        for v in list(world.traffic()):
            li = v.lane_index
            if li[1].endswith("xr") and v.lane.local_coordinates(v.position)[0] > 100.0:
                world.despawn(v)
        if rng.random() < 0.3 * self.density * world.cfg.dt_s:
            a = _ARMS[int(rng.integers(4))]
            world.spawn((f"{a}er", f"{a}es", 0), 2.0, float(rng.uniform(7.0, 10.0)), self._destination(rng))

    def is_junction(self, lane):
        return lane[0] in _RING and lane[1] in _RING


SCENARIOS: dict[str, type[Scenario]] = {
    cls.name: cls for cls in (HighwayScenario, MergeScenario, IntersectionScenario, RoundaboutScenario)
}


def make_scenario(name: str) -> Scenario:
    """A fresh scenario object by name; unknown names raise ValueError listing the available ones."""
    if not isinstance(name, str) or name not in SCENARIOS:
        raise ValueError(f"scenario: got {name!r}, expected one of {sorted(SCENARIOS)}")
    return SCENARIOS[name]()
