"""highway-env roads with faster bookkeeping: per-step cached lane coordinates and pre-filtered collisions.

The traffic model is highway-env's, unchanged: ``neighbour_vehicles`` returns the same preceding and
following vehicle as ``Road.neighbour_vehicles`` (same lanes searched, same on-lane test with its 1 m
margin, same tie rule), and ``step`` makes the same ``handle_collisions`` calls in the same order, minus
the pairs that highway-env's own spherical pre-check would reject. What changes is the cost: every
vehicle's coordinates along a lane are computed once per step (vectorised for straight, sine and
circular lanes) instead of once per query, and far pairs are dropped with one array operation.
"""

from __future__ import annotations

import numpy as np
from highway_env import utils
from highway_env.road.lane import AbstractLane, CircularLane, SineLane, StraightLane
from highway_env.road.regulation import RegulatedRoad
from highway_env.road.road import LaneIndex, Road
from highway_env.vehicle.objects import Landmark


def lane_coordinates(lane: AbstractLane, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(longitudinal, lateral) of (K, 2) points along ``lane`` (highway-env's lane formulas, vectorised)."""
    if isinstance(lane, StraightLane):  # SineLane too, corrected below
        delta = points - lane.start
        s, r = delta @ lane.direction, delta @ lane.direction_lateral
        if isinstance(lane, SineLane):
            r = r - lane.amplitude * np.sin(lane.pulsation * s + lane.phase)
        return s, r
    if isinstance(lane, CircularLane):
        delta = points - lane.center
        phi = np.arctan2(delta[:, 1], delta[:, 0])
        phi = lane.start_phase + (phi - lane.start_phase + np.pi) % (2 * np.pi) - np.pi
        radius = np.linalg.norm(delta, axis=1)
        return lane.direction * (phi - lane.start_phase) * lane.radius, lane.direction * (lane.radius - radius)
    coords = np.array([lane.local_coordinates(p) for p in points]).reshape(-1, 2)
    return coords[:, 0], coords[:, 1]


class FastRoad(Road):
    """A highway-env ``Road`` whose neighbour search and collision checks cost less (module docstring)."""

    def _others(self) -> tuple[list, np.ndarray]:
        cache = self.__dict__.setdefault("_cache", {})
        if "others" not in cache:
            others = [o for o in self.vehicles + self.objects if not isinstance(o, Landmark)]
            cache["others"] = (others, np.array([o.position for o in others]).reshape(-1, 2))
            cache["index"] = {id(o): k for k, o in enumerate(others)}
        return cache["others"]

    def _on_lane(self, index: LaneIndex) -> tuple[np.ndarray, np.ndarray]:
        """(s, on) of every other object along lane ``index``: on = highway-env's on_lane(margin=1)."""
        cache = self.__dict__.setdefault("_cache", {})
        key = ("lane", index)
        if key not in cache:
            lane = self.network.get_lane(index)
            _, pos = self._others()
            s, r = lane_coordinates(lane, pos)
            if isinstance(lane, (StraightLane, CircularLane)):
                width = np.full(len(s), lane.width)
            else:
                width = np.array([lane.width_at(float(v)) for v in s])
            on = (np.abs(r) <= width / 2 + 1.0) & (s >= -lane.VEHICLE_LENGTH) & (s < lane.length + lane.VEHICLE_LENGTH)
            cache[key] = (s, on)
        return cache[key]

    def _searched_lanes(self, index: LaneIndex) -> list[tuple[LaneIndex, float]]:
        """The lane itself, and with connected-lane search its successors and predecessors (with offsets)."""
        lanes = [(index, 0.0)]
        if not self.neighbour_vehicles_connected_lanes:
            return lanes
        graph = self.network.graph
        a, b, i = index
        length = self.network.get_lane(index).length
        for nxt, nxt_lanes in graph.get(b, {}).items():
            if nxt_lanes:
                lanes.append(((b, nxt, i if i < len(nxt_lanes) else 0), length))
        for start, tos in graph.items():
            prev = tos.get(a)
            if prev:
                j = i if i < len(prev) else 0
                lanes.append(((start, a, j), -prev[j].length))
        return lanes

    def _along(self, index: LaneIndex) -> tuple[np.ndarray, np.ndarray]:
        """(found, s) of every other object along lane ``index`` and the lanes searched with it."""
        cache = self.__dict__.setdefault("_cache", {})
        key = ("along", index)
        if key not in cache:
            others, _ = self._others()
            searched = self._searched_lanes(index)
            s_all = np.stack([self._on_lane(ix)[0] for ix, _ in searched])  # (L, K)
            on_all = np.stack([self._on_lane(ix)[1] for ix, _ in searched])
            first = np.argmax(on_all, axis=0)  # the first searched lane an object is on, as highway-env
            k = np.arange(len(others))
            offsets = np.array([off for _, off in searched])
            cache[key] = (on_all[first, k], s_all[first, k] + offsets[first])
        return cache[key]

    def neighbour_vehicles(self, vehicle, lane_index: LaneIndex | None = None):
        """The vehicles (or obstacles) just ahead of and behind ``vehicle`` along ``lane_index``."""
        lane_index = lane_index or vehicle.lane_index
        if not lane_index:
            return None, None
        others, _ = self._others()
        if not others:
            return None, None
        s_ego = self.network.get_lane(lane_index).local_coordinates(vehicle.position)[0]
        found, s_v = self._along(lane_index)
        me = self._cache["index"].get(id(vehicle))
        if me is not None and found[me]:
            found = found.copy()
            found[me] = False
        ahead = np.flatnonzero(found & (s_v >= s_ego))
        behind = np.flatnonzero(found & (s_v < s_ego))
        front = rear = None
        if len(ahead):
            best = s_v[ahead].min()
            front = others[ahead[np.flatnonzero(s_v[ahead] == best)[-1]]]  # ties: the last one, as highway-env
        if len(behind):
            best = s_v[behind].max()
            rear = others[behind[np.flatnonzero(s_v[behind] == best)[0]]]  # ties: the first one
        return front, rear

    def step(self, dt: float) -> None:
        """Step every vehicle, then highway-env's collision handling for the pairs that can touch."""
        for vehicle in self.vehicles:
            vehicle.step(dt)
        self.__dict__["_cache"] = {}
        vehicles, objects = self.vehicles, self.objects
        n = len(vehicles)
        if n == 0:
            return
        pos = np.array([v.position for v in vehicles])
        diag = np.array([v.diagonal for v in vehicles])
        reach = (diag / 2 + np.array([v.speed for v in vehicles]) * dt)[:, None]
        # highway-env's pre-check skips a pair when |p_j - p_i| > (d_i + d_j) / 2 + v_i dt.
        close = np.linalg.norm(pos[None] - pos[:, None], axis=-1) <= reach + diag[None] / 2
        if objects:
            opos = np.array([o.position for o in objects])
            odiag = np.array([o.diagonal for o in objects])
            close_obj = np.linalg.norm(opos[None] - pos[:, None], axis=-1) <= reach + odiag[None] / 2
        for i in range(n):
            for j in np.flatnonzero(close[i, i + 1 :]) + i + 1:
                vehicles[i].handle_collisions(vehicles[j], dt)
            if objects:
                for j in np.flatnonzero(close_obj[i]):
                    vehicles[i].handle_collisions(objects[j], dt)

    def act(self) -> None:
        self.__dict__["_cache"] = {}  # vehicles may have been added or removed since the last step
        super().act()


class FastRegulatedRoad(RegulatedRoad, FastRoad):
    """highway-env's ``RegulatedRoad`` (priorities at junctions) on top of ``FastRoad``.

    ``is_conflict_possible`` gives highway-env's answer (same horizon, step, distance pre-check and
    rectangle test, in time order) with the pre-check done for all times at once.
    """

    @staticmethod
    def is_conflict_possible(v1, v2, horizon: int = 3, step: float = 0.25) -> bool:
        times = np.arange(step, horizon, step)
        p1, h1 = v1.predict_trajectory_constant_speed(times)
        p2, h2 = v2.predict_trajectory_constant_speed(times)
        n = min(len(p1), len(p2))
        if n == 0:
            return False
        close = np.linalg.norm(np.asarray(p2[:n]) - np.asarray(p1[:n]), axis=1) <= v1.LENGTH
        for t in np.flatnonzero(close):
            if utils.rotated_rectangles_intersect(
                (p1[t], 1.5 * v1.LENGTH, 0.9 * v1.WIDTH, h1[t]), (p2[t], 1.5 * v2.LENGTH, 0.9 * v2.WIDTH, h2[t])
            ):
                return True
        return False
