"""CarlaEnv: the CARLA backend of drive_vla.types.DrivingEnv (sync 20 Hz, the shared rig, TM traffic, route scoring).

Needs a running CARLA 0.9.15/0.9.16 server. The decisions it makes are pure functions in
carla_agents/episode.py (tested without a server); this class only talks to the server.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import random
import socket
from pathlib import Path
from typing import Any

import numpy as np

from carla_agents.convert import (
    PoseHistory,
    bgra_to_rgb,
    build_observation,
    carla_pose_to_local,
    carla_vector_to_ego,
    speed_limit_from_kmh,
    to_vehicle_control,
    transform_to_local_pose,
)
from carla_agents.episode import (
    CarlaConnectionError,
    CarlaEnvConfig,
    RouteProgress,
    annotate_route,
    choose_spawn_indices,
    collision_kind,
    copy_settings,
    episode_end,
    forward_speed_mps,
    frame_data,
    same_town,
    synchronous_settings,
    town_for_scenario,
    walk_route,
    yaw_rate_rps_from_carla,
)
from carla_agents.route import RoutePlanner, command_for_road_option, instruction_for_road_option, parse_road_option
from carla_agents.sensor_rig import camera_specs, rig_calibration
from drive_vla.route_planner import usable_route_target
from drive_vla.types import CAMERA_NAMES, Control, EgoState, Observation, StepResult

logger = logging.getLogger("carla_agents.carla_env")


def connect(host: str, port: int, connect_timeout_s: float, timeout_s: float) -> Any:
    """A carla.Client that has answered, or CarlaConnectionError naming the address and what to start."""
    hint = f"start one with `CarlaUE4.sh -RenderOffScreen -carla-rpc-port={port}` (CARLA 0.9.15/0.9.16)"
    try:
        with socket.create_connection((host, port), timeout=connect_timeout_s):
            pass
    except OSError as exc:
        raise CarlaConnectionError(f"no CARLA server answers at {host}:{port} ({exc}); {hint}") from None
    import carla

    client = carla.Client(host, int(port))
    client.set_timeout(float(connect_timeout_s))
    try:
        version = client.get_server_version()
    except RuntimeError as exc:
        raise CarlaConnectionError(f"CARLA server at {host}:{port} did not answer in time ({exc}); {hint}") from None
    logger.info("CARLA server %s at %s:%d", version, host, port)
    client.set_timeout(float(timeout_s))
    return client


class CarlaEnv:
    """A closed-loop CARLA episode: ``reset(scenario, seed) -> Observation``, ``step(Control) -> StepResult``.

    ``scenario`` naming a map ("Town05") loads it, anything else keeps ``cfg.town`` (or the current map).
    Use as a context manager (or call ``close()``): actors are destroyed and the world's settings restored
    on exit and on errors.
    """

    def __init__(
        self,
        cfg: CarlaEnvConfig | None = None,
        client: Any = None,
        *,
        host: str | None = None,
        port: int | None = None,
        town: str | None = None,
        image_wh: tuple[int, int] | None = None,
    ) -> None:
        """Connect to the server (or use ``client``); keyword values override ``cfg`` (the CLI's flags)."""
        given: dict[str, Any] = {k: v for k, v in (("host", host), ("port", port), ("town", town)) if v is not None}
        if image_wh is not None:
            given["camera_width"], given["camera_height"] = int(image_wh[0]), int(image_wh[1])
        self.cfg = dataclasses.replace(cfg or CarlaEnvConfig(), **given)
        self.client = client or connect(self.cfg.host, self.cfg.port, self.cfg.connect_timeout_s, self.cfg.timeout_s)
        self.world: Any = None
        self.map: Any = None
        self.tm: Any = None
        self._original_settings: Any = None
        self._actors: list[Any] = []  # sensors first, then vehicles (destroy order)
        self._queues: dict[str, queue.Queue] = {}
        self._events: dict[str, list] = {"collision": [], "lane_invasion": []}
        self._specs = camera_specs(self.cfg.camera_width, self.cfg.camera_height, self.cfg.ego_origin_in_vehicle_m)
        self._intr, self._extr = rig_calibration(self._specs, self.cfg.ego_origin_in_vehicle_m)
        self.ego: Any = None

    @property
    def dt_s(self) -> float:
        """Simulated seconds per step (the drive loop reads it)."""
        return float(self.cfg.fixed_delta_s)

    # ------------------------------------------------------------------ DrivingEnv

    def reset(self, scenario: str = "", seed: int = 0) -> Observation:
        self._destroy_actors()
        try:
            self._prepare_world(town_for_scenario(scenario, self.cfg.town), seed)
            self._spawn(seed)
            self._start_episode()
            for _ in range(self.cfg.warmup_ticks):
                self._tick(Control.emergency_brake())
            for events in self._events.values():  # spawn bumps are not the policy's collisions
                events.clear()
            return self._observe(self._tick(Control.emergency_brake()))[0]
        except BaseException:
            self._destroy_actors()
            raise

    def step(self, control: Control, observe: bool = True) -> StepResult:
        """Apply ``control`` for one tick. ``observe=False`` skips building the cameras' Observation
        (the drive loop asks only when the planner runs); ``info["ego"]`` always carries the EgoState."""
        if self.ego is None:
            raise RuntimeError("CarlaEnv.step: call reset() first")
        frame = self._tick(control)
        obs, info = self._observe(frame, observe)
        return StepResult(observation=obs, done=info["reason"] is not None, info=info)

    def close(self) -> None:
        try:
            self._destroy_actors()
        finally:
            if self.world is not None and self._original_settings is not None:
                if self.tm is not None:
                    self.tm.set_synchronous_mode(False)
                self.world.apply_settings(self._original_settings)
                self._original_settings = None

    def __enter__(self) -> CarlaEnv:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ world and actors

    def _prepare_world(self, town: str, seed: int) -> None:
        world = self.client.get_world()
        cmap = world.get_map()  # get_map() transfers the whole map: once per world
        if town and not same_town(cmap.name, town):
            if self._original_settings is not None:  # leave the old world as we found it
                world.apply_settings(self._original_settings)
            world = self.client.load_world(town)
            cmap = world.get_map()
            self._original_settings = None
        self.world, self.map = world, cmap
        if self._original_settings is None:
            self._original_settings = copy_settings(world.get_settings())
        world.apply_settings(synchronous_settings(self._original_settings, self.cfg.fixed_delta_s))
        self.tm = self.client.get_trafficmanager(self.cfg.tm_port)
        self.tm.set_synchronous_mode(True)
        self.tm.set_hybrid_physics_mode(True)
        self.tm.set_hybrid_physics_radius(self.cfg.hybrid_physics_radius_m)
        self.tm.set_random_device_seed(int(seed))
        world.tick()

    def _spawn(self, seed: int) -> None:
        import carla

        world, cfg = self.world, self.cfg
        library = world.get_blueprint_library()
        points = self.map.get_spawn_points()
        ego_index, traffic = choose_spawn_indices(len(points), cfg.n_vehicles, seed)
        ego_bp = library.find(cfg.vehicle_blueprint)
        ego_bp.set_attribute("role_name", "hero")
        for idx in [ego_index, *traffic]:  # the seed's spawn point, or the next free one
            self.ego = world.try_spawn_actor(ego_bp, points[idx])
            if self.ego is not None:
                ego_index = idx
                break
        if self.ego is None:
            raise RuntimeError(
                f"CarlaEnv: could not spawn {cfg.vehicle_blueprint} at any of {len(points)} spawn points"
            )
        self._actors.append(self.ego)
        traffic = [i for i in traffic if i != ego_index]
        rng = random.Random(seed)
        cars = [
            bp
            for bp in library.filter("vehicle.*")
            if bp.has_attribute("number_of_wheels") and bp.get_attribute("number_of_wheels").as_int() == 4
        ]
        for idx in traffic:
            bp = rng.choice(cars)
            if bp.has_attribute("role_name"):
                bp.set_attribute("role_name", "autopilot")
            actor = world.try_spawn_actor(bp, points[idx])
            if actor is not None:
                actor.set_autopilot(True, cfg.tm_port)
                self._actors.insert(0, actor)
        for spec in self._specs:
            bp = library.find("sensor.camera.rgb")
            for key, value in (("image_size_x", spec["width"]), ("image_size_y", spec["height"]), ("fov", spec["fov"])):
                bp.set_attribute(key, str(value))
            tf = carla.Transform(
                carla.Location(x=spec["x"], y=spec["y"], z=spec["z"]),
                carla.Rotation(pitch=spec["pitch"], yaw=spec["yaw"], roll=spec["roll"]),
            )
            cam = world.spawn_actor(bp, tf, attach_to=self.ego)
            q: queue.Queue = queue.Queue()
            cam.listen(lambda image, q=q: q.put((image.frame, _image_array(image))))
            self._queues[spec["id"]] = q
            self._actors.insert(0, cam)
        for kind in ("collision", "lane_invasion"):
            sensor = world.spawn_actor(library.find(f"sensor.other.{kind}"), carla.Transform(), attach_to=self.ego)
            sensor.listen(lambda event, kind=kind: self._events[kind].append(event))
            self._actors.insert(0, sensor)
        self._route_waypoints = self._plan_route(points[ego_index], points, rng)

    def _plan_route(self, start: Any, points: list, rng: random.Random) -> list[tuple[Any, Any]]:
        """(waypoint, RoadOption) pairs: GlobalRoutePlanner when CARLA's agents package is importable."""
        cmap = self.map
        start_wp = cmap.get_waypoint(start.location)
        try:
            from agents.navigation.global_route_planner import GlobalRoutePlanner
        except ImportError:
            GlobalRoutePlanner = None
        if GlobalRoutePlanner is not None:
            far = [p for p in points if 0.6 * self.cfg.route_length_m < p.location.distance(start.location)]
            if far:
                goal = min(far, key=lambda p: p.location.distance(start.location))
                trace = GlobalRoutePlanner(cmap, self.cfg.route_step_m).trace_route(start.location, goal.location)
                if len(trace) >= 2:
                    return [(wp, parse_road_option(opt)) for wp, opt in trace]
        wps = walk_route(start_wp, self.cfg.route_length_m, self.cfg.route_step_m, rng)
        options = annotate_route([w.transform.rotation.yaw for w in wps], [w.is_junction for w in wps])
        return list(zip(wps, options))

    def _start_episode(self) -> None:
        cfg = self.cfg
        route_xy = np.array(
            [
                carla_pose_to_local(w.transform.location.x, w.transform.location.y, 0.0)[:2]
                for w, _ in self._route_waypoints
            ]
        )
        self._route_options = [opt for _, opt in self._route_waypoints]
        self._progress = RouteProgress(route_xy)
        self._planner = RoutePlanner(cfg.route_min_distance_m, cfg.route_max_distance_m)
        self._planner.set_route(route_xy, self._route_options)
        self._goal_xy = route_xy[-1]
        self._history = PoseHistory()
        self._events["collision"].clear()
        self._events["lane_invasion"].clear()
        self._t0: float | None = None
        self._standstill_s = 0.0
        self._last_steer = 0.0

    def _tick(self, control: Control) -> int:
        self.ego.apply_control(to_vehicle_control(control))
        self._last_steer = float(control.steer)
        return int(self.world.tick())

    def _destroy_actors(self) -> None:
        import carla

        for actor in self._actors:
            if actor.type_id.startswith("sensor."):
                try:
                    actor.stop()
                except RuntimeError:  # already gone
                    pass
        if self._actors:
            self.client.apply_batch_sync([carla.command.DestroyActor(a) for a in self._actors], False)
        self._actors, self._queues, self.ego = [], {}, None

    # ------------------------------------------------------------------ observation and scoring

    def _observe(self, frame: int, observe: bool = True) -> tuple[Observation | None, dict[str, Any]]:
        cfg = self.cfg
        snapshot_t = self.world.get_snapshot().timestamp.elapsed_seconds
        self._t0 = snapshot_t if self._t0 is None else self._t0
        t = snapshot_t - self._t0
        tf = self.ego.get_transform()
        pose = transform_to_local_pose(tf)
        vel, acc, ang = self.ego.get_velocity(), self.ego.get_acceleration(), self.ego.get_angular_velocity()
        fwd = tf.get_forward_vector()
        speed = forward_speed_mps((vel.x, vel.y, vel.z), (fwd.x, fwd.y, fwd.z))
        ego = EgoState(
            speed_mps=float(np.clip(speed, -20.0, 100.0)),
            accel_mps2=np.clip(carla_vector_to_ego(acc.x, acc.y, pose[2]), -50.0, 50.0).astype(np.float32),
            yaw_rate_rps=float(np.clip(yaw_rate_rps_from_carla(ang.z), -10.0, 10.0)),
            steer=float(np.clip(self._last_steer, -1.0, 1.0)),
            source="sim",
        )
        target = self._planner.run_step(pose[:2])
        history = self._history.in_ego_frame(t, pose)
        self._history.add(t, pose)
        obs = None
        if observe:  # older camera frames left in the queues are dropped here
            images = {c: bgra_to_rgb(frame_data(self._queues[c], frame, cfg.sensor_timeout_s, c)) for c in CAMERA_NAMES}
            obs = build_observation(
                images,
                self._intr,
                self._extr,
                ego,
                history,
                command_for_road_option(target.option),
                instruction_for_road_option(target.option, cfg.instruction_style),
                t,
                usable_route_target(target.in_ego_frame(pose[:2], pose[2]), "observation.route_target"),
                speed_limit_from_kmh(self.ego.get_speed_limit()),
                target.junction_m,
            )
        completion, off_route = self._progress.update(pose[:2])
        collisions = self._events["collision"]
        collision_with = getattr(collisions[-1].other_actor, "type_id", "static") if collisions else None
        collision = collision_kind(collision_with) if collisions else None
        collisions.clear()
        invasions = self._events["lane_invasion"]
        lane_invasion = bool(invasions)
        invasions.clear()
        self._standstill_s = self._standstill_s + cfg.fixed_delta_s if abs(speed) < cfg.standstill_speed_mps else 0.0
        import carla

        off_road = self.map.get_waypoint(tf.location, project_to_road=False, lane_type=carla.LaneType.Driving) is None
        reason = episode_end(
            cfg,
            t,
            completion,
            float(np.linalg.norm(self._goal_xy - pose[:2])),
            off_route,
            collision,
            self._standstill_s,
        )
        info = {
            "ego": ego,
            "pose": (float(pose[0]), float(pose[1]), float(pose[2])),  # local frame: x east, y north, yaw CCW
            "collision_with": collision_with,
            "goal_reached": reason == "goal",
            "done": reason is not None,
            "time_s": t,
            "route_completion": completion,
            "collision": collision,
            "off_road": off_road,
            "off_route_m": off_route,
            "speed_mps": speed,
            "reason": reason,
            "lane_invasion": lane_invasion,
            "frame": frame,
            "town": self.map.name,
            "route_length_m": self._progress.length_m,
        }
        return obs, info


def _image_array(image: Any) -> np.ndarray:
    """carla.Image -> (H, W, 4) uint8 BGRA copy (the leaderboard's layout)."""
    return np.frombuffer(image.raw_data, dtype=np.uint8).reshape(image.height, image.width, 4).copy()


def make_carla_env(
    host: str | None = None,
    port: int | None = None,
    town: str | None = None,
    config: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
) -> CarlaEnv:
    """CarlaEnv for ``drive-vla drive --env carla --host H --port P --town T`` (config YAML + overrides)."""
    import dataclasses

    from drive_vla.config import load_config

    cfg = load_config(CarlaEnvConfig, config, overrides)
    given = {k: v for k, v in (("host", host), ("port", port), ("town", town)) if v is not None}
    return CarlaEnv(dataclasses.replace(cfg, **given))


__all__ = ["CarlaConnectionError", "CarlaEnv", "CarlaEnvConfig", "connect", "make_carla_env"]
