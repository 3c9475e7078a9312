"""The expert driver of the embedded world (its decision record lives in decision.py).

The expert follows its route to the destination: pure pursuit on the lane centre line (lateral), IDM
towards a target speed limited by the road's curvature (longitudinal), with every reason to slow down
expressed as a virtual or real obstacle on its path: the vehicle ahead (following), a stopped vehicle or
barrier (stopping, blocked), a yield line while crossing traffic is predicted to pass that has priority,
is already in the junction or is not giving way (yielding), the route's end (stopping, goal). The binding
one names the decision; the explanation is built from the same numbers, so it is a label and not a guess.
It reads the core ``World`` (world.py) and never changes it; embedded.py applies its control.
"""

from __future__ import annotations

import math

import numpy as np
from highway_env.vehicle.objects import Obstacle

from drive_vla.geometry import canonical_steering_from_sim
from drive_vla.sim.config import EgoDynamicsConfig, ExpertConfig
from drive_vla.sim.decision import REASONS, Constraint, ExpertDecision, accel_to_control, explain
from drive_vla.sim.route import path_ahead
from drive_vla.sim.world import World
from drive_vla.types import Command

__all__ = ["REASONS", "Expert", "ExpertDecision"]


class Expert:
    """Rule-based driver of the ego (see the module docstring). Call ``reset`` per episode."""

    def __init__(self, cfg: ExpertConfig, ego: EgoDynamicsConfig):
        self.cfg = cfg
        self.ego_cfg = ego
        self.reset()

    def reset(self, desired_speed_mps: float = 10.0) -> None:
        self.desired_speed_mps = float(desired_speed_mps)
        self.lane_override = None  # a neighbour lane of the route's lane after a merge decision
        self._goal_braking = False

    # ------------------------------------------------------------------ main entry

    def decide(self, world: World) -> ExpertDecision:
        """The expert's control and decision for the world's current state (does not change the world)."""
        cfg, ego = self.cfg, world.ego
        route, piece = world.route, world.route_piece
        lane_index = route.lanes[piece]
        if self.lane_override is not None and self.lane_override[:2] != lane_index[:2]:
            self.lane_override = None
        merge_blocker = self._merge(world, piece)
        use_lane = self.lane_override or lane_index
        lane = world.road.network.get_lane(use_lane)
        s_lane, lat = lane.local_coordinates(ego.position)
        reach = max(cfg.path_check_m, cfg.speed_preview_m, cfg.lookahead_max_m) + 5.0
        xy, arc, heading = path_ahead(world.lanes, route, piece, use_lane, s_lane, reach)

        steer = self._pure_pursuit(ego, xy, arc)
        target, curve_limited = self._target_speed(ego.speed, lane.speed_limit, arc, heading)
        target = min(target, self._junction_cap(world))

        # The ego is not exactly on the centre line (pure pursuit cuts curves): widen the corridor by its offset.
        widen = min(abs(lat), 1.5)
        constraints = self._on_path(world, xy, arc, widen)
        nearest = min(constraints, key=lambda c: c.gap_m, default=None)
        self._ahead = {}
        if nearest is not None:
            self._ahead = dict(
                ahead_id=getattr(nearest.agent, "instance_id", "barrier"),
                ahead_distance_m=float(max(0.0, nearest.gap_m)),
                ahead_speed_mps=float(nearest.speed_mps),
            )
        constraints += self._crossing(world, xy, arc, target, {id(c.agent) for c in constraints})
        yielding = self._yield(world, piece, target)
        if yielding is not None:
            constraints.append(yielding)
        if merge_blocker is not None:
            # Wait before the merge lane's end (where highway-env puts a barrier), a little before the barrier
            # itself would stop the car, so the wait reads as yielding.
            line_end = world.road.network.get_lane(lane_index).length
            gap = line_end - s_lane - self.ego_cfg.length_m / 2 - 1.0
            constraints.append(Constraint(gap, 0.0, "yield", merge_blocker, min_gap_m=cfg.min_gap_m + 0.5))
        goal = self._goal(ego.speed, route.length_m - world.route_arc - cfg.goal_stop_m)
        if goal is not None:
            constraints.append(goal)

        a_free = self._idm(ego.speed, target, None)
        a, binding = a_free, None
        for c in constraints:
            a_c = self._idm(ego.speed, target, c) if c.accel_mps2 is None else c.accel_mps2
            if a_c < a:
                a, binding = a_c, c
        a = float(np.clip(a, -cfg.max_decel_mps2, cfg.comfort_accel_mps2))
        # The obstacle names the decision when it changes what the car does: it costs clearly more than
        # the free-road acceleration, or makes the car brake, or holds it standing close behind it.
        shapes = a < a_free - 0.5 or (a < 0.0 and a < a_free - 0.2)
        if binding is not None and not shapes and not self._close(ego.speed, binding):
            binding = None
        control = accel_to_control(a, ego.speed, self.ego_cfg, steer)
        turn = self._turning(world, lat)
        return explain(world, binding, control, a, target, curve_limited, turn, self._ahead, cfg.stopped_speed_mps)

    # ------------------------------------------------------------------ lateral

    def _pure_pursuit(self, ego, xy: np.ndarray, arc: np.ndarray) -> float:
        cfg, length = self.cfg, self.ego_cfg.length_m
        look = float(
            np.clip(cfg.lookahead_min_m + cfg.lookahead_time_s * ego.speed, cfg.lookahead_min_m, cfg.lookahead_max_m)
        )
        rear = ego.position - 0.5 * length * np.array([math.cos(ego.heading), math.sin(ego.heading)])
        dist = np.linalg.norm(xy - rear[None], axis=1)
        ahead = np.flatnonzero((dist >= look) & (arc > 0.0))
        target = xy[ahead[0]] if len(ahead) else xy[-1]
        d = target - rear
        ld = max(float(np.hypot(*d)), 1.0)
        alpha = math.atan2(d[1], d[0]) - ego.heading
        curvature = 2.0 * math.sin(alpha) / ld
        delta_sim = math.atan(length * curvature)  # kinematic bicycle, rear-axle reference, wheelbase = length
        return canonical_steering_from_sim(delta_sim) / self.ego_cfg.max_steer_rad

    # ------------------------------------------------------------------ longitudinal

    def _target_speed(
        self, speed: float, limit: float | None, arc: np.ndarray, heading: np.ndarray
    ) -> tuple[float, bool]:
        cfg = self.cfg
        base = min(self.desired_speed_mps, float(limit) if limit else 1e9)
        if cfg.max_cruise_mps > 0.0:
            base = min(base, cfg.max_cruise_mps)
        keep = arc <= cfg.speed_preview_m
        if keep.sum() < 3:
            return base, False
        a, h = arc[keep], heading[keep]
        kappa = np.abs(np.gradient(h, a, edge_order=1)) if np.all(np.diff(a) > 1e-6) else np.zeros_like(a)
        win = min(9, len(kappa))
        kappa = np.convolve(kappa, np.ones(win) / win, mode="same")  # ~4 m window: lane joins are not curves
        v_curve = np.sqrt(cfg.max_lateral_accel_mps2 / np.maximum(kappa, 1e-4))
        allowed = np.sqrt(v_curve**2 + 2.0 * cfg.comfort_decel_mps2 * np.maximum(a - 2.0, 0.0))
        v = float(min(base, allowed.min()))
        return max(v, 2.0), v < base - 0.5

    def _junction_cap(self, world: World) -> float:
        """The cautious approach speed before a yield line (ExpertConfig.junction_approach_*): a target
        that decelerates comfortably to ``junction_approach_mps`` at the line; no cap elsewhere."""
        cfg = self.cfg
        to_line = world.to_yield_line_m() if cfg.junction_approach_mps > 0.0 else None
        if to_line is None or to_line > cfg.junction_approach_m or to_line < -cfg.commit_after_m:
            return math.inf
        return math.sqrt(cfg.junction_approach_mps**2 + 2.0 * cfg.comfort_decel_mps2 * max(to_line, 0.0))

    def _in_sight(self, world: World, v, default_m: float) -> bool:
        """Whether vehicle ``v`` is within ``default_m`` of the ego, and within perception_range_m if set."""
        reach = min(default_m, self.cfg.perception_range_m) if self.cfg.perception_range_m > 0 else default_m
        return bool(np.linalg.norm(v.position - world.ego.position) <= reach)

    def _idm(self, v: float, v0: float, c: Constraint | None) -> float:
        cfg = self.cfg
        a_max, b = cfg.comfort_accel_mps2, cfg.comfort_decel_mps2
        free = a_max * (1.0 - (max(v, 0.0) / max(v0, 0.1)) ** cfg.idm_delta)
        free = max(free, -b)  # slow towards a lower target speed comfortably
        if c is None:
            return free
        if c.gap_m <= 0.2:
            return -cfg.max_decel_mps2
        s0 = cfg.min_gap_m if c.min_gap_m is None else c.min_gap_m
        s_star = s0 + max(0.0, v * cfg.time_gap_s + v * (v - c.speed_mps) / (2.0 * math.sqrt(a_max * b)))
        return free - a_max * (s_star / c.gap_m) ** 2

    def _goal(self, v: float, d: float) -> Constraint | None:
        """Stop at the route's end with the constant deceleration that reaches it (once it is noticeable);
        IDM would start easing off hundreds of metres early at highway speed."""
        cfg = self.cfg
        if d <= 0.3:
            return Constraint(
                max(d, 0.0), 0.0, "goal", accel_mps2=-cfg.max_decel_mps2 if v > 0.1 else -cfg.comfort_decel_mps2
            )
        need = v * v / (2.0 * d)
        # Hysteresis: start braking once it takes 3/4 of a comfortable deceleration; keep braking at the
        # constant deceleration that ends at the goal unless something else slowed the car far more.
        if need < (0.2 if self._goal_braking else 0.75) * cfg.comfort_decel_mps2:
            self._goal_braking = False
            return None
        self._goal_braking = True
        return Constraint(d, 0.0, "goal", accel_mps2=-min(cfg.max_decel_mps2, need))

    def _close(self, speed: float, c: Constraint) -> bool:
        """Whether an obstacle shapes the behaviour although IDM barely reacts (e.g. standing behind it)."""
        return speed < self.cfg.stopped_speed_mps and c.gap_m < self.cfg.min_gap_m + 6.0

    # ------------------------------------------------------------------ what is on the path

    def _on_path(self, world: World, xy: np.ndarray, arc: np.ndarray, widen: float = 0.0) -> list[Constraint]:
        """Vehicles and barriers whose footprint reaches into the corridor the ego sweeps along the path."""
        cfg, ego = self.cfg, world.ego
        half_w, half_l = self.ego_cfg.width_m / 2, self.ego_cfg.length_m / 2
        things = [v for v in world.road.vehicles if v is not ego] + list(world.road.objects)
        near = [t for t in things if np.linalg.norm(t.position - ego.position) < cfg.path_check_m + 12.0]
        if not near or len(xy) < 2:
            return []
        xy, arc = xy[::2], arc[::2]  # 1 m apart is fine enough for footprints ~2 m wide
        pts = []
        for t in near:
            poly = t.polygon()[:4]
            nxt = np.roll(poly, -1, axis=0)
            pts.append(np.concatenate([poly, (2 * poly + nxt) / 3, (poly + 2 * nxt) / 3, t.position[None]]))
        pts = np.stack(pts)  # (N, 13, 2): corners, points at thirds of each side, centre
        d2 = np.sum((pts[:, :, None, :] - xy[None, None, :, :]) ** 2, axis=-1)  # (N, 13, M)
        j = np.argmin(d2, axis=2)
        dmin = np.sqrt(np.take_along_axis(d2, j[..., None], axis=2)[..., 0])
        inside = dmin < half_w + cfg.corridor_margin_m + widen
        out = []
        tangent = np.diff(xy, axis=0, append=xy[-1:] + (xy[-1:] - xy[-2:-1]))
        tangent /= np.maximum(np.linalg.norm(tangent, axis=1, keepdims=True), 1e-9)
        for n, t in enumerate(near):
            if not inside[n].any():
                continue
            k = int(j[n][inside[n]].min())
            if arc[k] < 0.25:  # projects onto the ego's own position: beside or behind it
                continue
            gap = float(arc[k]) - half_l
            speed = 0.0 if isinstance(t, Obstacle) else max(0.0, float(t.velocity @ tangent[k]))
            out.append(Constraint(gap, speed, "static" if isinstance(t, Obstacle) else "vehicle", t))
        return out

    def _crossing(self, world: World, xy, arc, target_speed: float, skip: set[int]) -> list[Constraint]:
        """Moving vehicles predicted (highway-env, constant speed along their route) to enter the ego's
        corridor ahead while the ego would be there: brake for them where they will cross."""
        cfg, ego = self.cfg, world.ego
        half_w, half_l = self.ego_cfg.width_m / 2, self.ego_cfg.length_m / 2
        keep = arc <= cfg.crossing_check_m
        path, path_arc = xy[keep][::2], arc[keep][::2]
        if len(path) < 2:
            return []
        times = np.arange(0.5, cfg.crossing_horizon_s + 1e-9, 0.5)
        forward = np.array([math.cos(ego.heading), math.sin(ego.heading)])
        out = []
        for v in world.traffic():
            if id(v) in skip or v.speed < cfg.stopped_speed_mps:
                continue
            if (v.position - ego.position) @ forward < 0.0 and math.cos(v.heading - ego.heading) > 0.7:
                continue  # a follower: its constant-speed prediction drives through the ego, it does not cross
            if not self._in_sight(world, v, cfg.crossing_check_m + v.speed * times[-1]):
                continue
            positions, _ = v.predict_trajectory_constant_speed(times)
            d = np.sqrt(np.sum((np.asarray(positions)[:, None] - path[None]) ** 2, axis=-1))  # (T, K)
            hit = (d < half_w + v.WIDTH / 2 + cfg.corridor_margin_m) & (path_arc[None] > half_l)
            if not hit.any():
                continue
            ti, k = np.argwhere(hit)[0]
            s_c = float(path_arc[k])
            reach = half_l + v.LENGTH / 2 + 1.0
            t_in, t_out = self._time_to_reach(np.array([s_c - reach, s_c + reach]), ego.speed, target_speed)
            if t_in - cfg.yield_margin_s <= times[ti] <= t_out + cfg.yield_margin_s:
                out.append(Constraint(s_c - half_l - v.LENGTH / 2, 0.0, "crossing", v))
        return out

    # ------------------------------------------------------------------ right of way

    def _yield(self, world: World, piece: int, target_speed: float) -> Constraint | None:
        """A stop at the yield line while a vehicle with priority is predicted to pass through the ego's
        junction path at about the time the ego would be there (gap acceptance on predicted times)."""
        cfg, ego, route = self.cfg, world.ego, world.route
        if route.stop_piece is None or piece > route.stop_piece:
            return None
        line_arc = route.piece_arc(route.stop_piece)
        half_l, half_w = self.ego_cfg.length_m / 2, self.ego_cfg.width_m / 2
        to_line = line_arc - world.route_arc - half_l
        reach = max(30.0, ego.speed**2 / (2 * cfg.comfort_decel_mps2) + 15.0)
        if to_line < cfg.yield_stop_m - cfg.commit_after_m or to_line > reach:  # committed, or far
            return None
        end_piece = route.maneuver_end_piece if route.maneuver_end_piece is not None else route.stop_piece
        end_arc = route.piece_arc(min(end_piece + 1, len(route.lanes) - 1)) + 3.0
        keep = (route.arc >= line_arc) & (route.arc <= end_arc)
        zone, zone_d = route.xy[keep][::2], route.arc[keep][::2] - world.route_arc  # ~1 m apart
        if len(zone) == 0:
            return None
        t_in = self._time_to_reach(zone_d - half_l - 1.0, ego.speed, target_speed) - cfg.yield_margin_s
        t_out = self._time_to_reach(zone_d + half_l + 1.0, ego.speed, target_speed) + cfg.yield_margin_s
        net, scenario = world.road.network, world.scenario
        p_ego = scenario.priority(net, route.lanes[route.stop_piece])
        times = np.arange(0.5, cfg.yield_horizon_s + 1e-9, 0.5)
        best = None
        for v in world.traffic():
            in_junction = scenario.is_junction(v.lane_index)
            if not in_junction and v.speed < cfg.stopped_speed_mps:
                continue  # standing before the junction; if it blocks the path, _on_path stops the ego
            if v.lane_index[:2] == ego.lane_index[:2] or not self._in_sight(world, v, 90.0):
                continue
            lanes = [v.lane_index] + [r for r in (v.route or []) if r[:2] != v.lane_index[:2]]
            k = next((i for i, ln in enumerate(lanes) if scenario.is_junction(ln)), None)
            if k is None:
                continue
            conflict = lanes[k] if lanes[k][2] is not None else (*lanes[k][:2], 0)
            p_other = scenario.priority(net, conflict)
            # Right of way in practice: priority, or already inside the junction (a car standing or yielding
            # there can move off at any time; entering beside it is how junctions deadlock), or not visibly
            # giving way: only a car held by the regulation that can still stop comfortably before the
            # junction is trusted to wait (highway-env re-decides who yields every 0.5 s on constant-speed
            # predictions, so a car that is not yielding now may well come through).
            trusted = getattr(v, "is_yielding", False) and not self._committed(net, v, lanes[:k])
            if not (p_other > p_ego or in_junction or not trusted):
                continue
            positions, _ = v.predict_trajectory_constant_speed(times)
            track = np.concatenate([v.position[None], np.asarray(positions)])  # (T, 2) at t = 0, 0.5, ...
            tau = np.concatenate([[0.0], times])
            d = np.sqrt(np.sum((track[:, None] - zone[None]) ** 2, axis=-1))  # (T, K)
            near = d < half_w + v.WIDTH / 2 + cfg.yield_clearance_m
            overlap = near & (tau[:, None] >= t_in[None]) & (tau[:, None] <= t_out[None])
            if overlap.any():
                t_hit = float(tau[np.flatnonzero(overlap.any(axis=1))[0]])
                if best is None or t_hit < best[0]:
                    place = "roundabout" if scenario.name == "roundabout" else "intersection"
                    why = (
                        "has the right of way"
                        if p_other > p_ego
                        else f"is already in the {place}"
                        if in_junction
                        else "is not giving way"
                    )
                    best = (t_hit, v, why)
        if best is None:
            return None
        return Constraint(to_line - cfg.yield_stop_m, 0.0, "yield", best[1], min_gap_m=0.5, why=best[2])

    def _committed(self, net, v, before: list) -> bool:
        """Whether vehicle ``v`` cannot stop comfortably before the junction (``before``: its lanes up to it)."""
        d = -v.LENGTH / 2
        for i, ln in enumerate(before):
            lane = net.get_lane(ln if ln[2] is not None else (*ln[:2], 0))
            d += lane.length - (lane.local_coordinates(v.position)[0] if i == 0 else 0.0)
        return v.speed**2 > 2.0 * self.cfg.comfort_decel_mps2 * max(d, 0.1)

    def _time_to_reach(self, d: np.ndarray, v: float, v_cap: float) -> np.ndarray:
        """Seconds for the ego to cover distances ``d`` accelerating comfortably from ``v`` up to ``v_cap``."""
        a = self.cfg.comfort_accel_mps2
        v_cap = max(v_cap, v, 1.0)
        t_acc = (v_cap - v) / a
        d_acc = v * t_acc + 0.5 * a * t_acc**2
        d = np.maximum(d, 0.0)
        accel_phase = (-v + np.sqrt(v * v + 2 * a * d)) / a
        return np.where(d <= d_acc, accel_phase, t_acc + (d - d_acc) / v_cap)

    def _merge(self, world: World, piece: int):
        """On a merge lane: change lanes when the gap is safe; else return the vehicle that closes the gap."""
        cfg, ego, route = self.cfg, world.ego, world.route
        if route.merge_to is None or piece != route.maneuver_piece or self.lane_override is not None:
            return None
        here = route.lanes[piece]
        target = (here[0], here[1], route.merge_to)
        lane = world.road.network.get_lane(target)
        s_e, _ = lane.local_coordinates(ego.position)
        s_here = world.road.network.get_lane(here).local_coordinates(ego.position)[0]
        blocker = None
        for v in world.traffic():
            s_o, lat_o = lane.local_coordinates(v.position)
            if abs(lat_o) > 2.6:
                continue
            rel = s_o - s_e
            gap = abs(rel) - (self.ego_cfg.length_m + v.LENGTH) / 2
            if rel >= 0:
                need = max(cfg.min_gap_m + 2.0, cfg.merge_gap_front_s * ego.speed + max(0.0, ego.speed - v.speed))
            else:
                need = max(cfg.min_gap_m + 2.0, cfg.merge_gap_rear_s * v.speed + 1.5 * max(0.0, v.speed - ego.speed))
            if gap < need and (blocker is None or abs(rel) < blocker[0]):
                blocker = (abs(rel), v)
        if blocker is None and s_here >= 2.0:
            self.lane_override = target
            return None
        return None if blocker is None else blocker[1]

    # ------------------------------------------------------------------ explanation

    def _turning(self, world: World, lat: float) -> str | None:
        route = world.route
        if route.maneuver not in (Command.LEFT, Command.RIGHT) or route.maneuver_piece is None:
            return None
        side = "left" if route.maneuver == Command.LEFT else "right"
        if route.merge_to is not None:
            return side if self.lane_override is not None and abs(lat) > 0.5 else None
        start = route.piece_arc(route.maneuver_piece) - 8.0
        end = route.piece_arc(min(route.maneuver_end_piece + 1, len(route.lanes) - 1))
        return side if start <= world.route_arc <= end else None
