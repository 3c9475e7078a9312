"""Record the expert in the embedded world as a nuScenes-format dataset with DriveLM-style labels.

``make_embedded(out_dir, scenes, seed)`` rolls the expert through seeded scenarios (one scene per
episode), renders the six cameras at every 2 Hz keyframe, annotates the other agents with stable
instance ids, stores CAN-bus state, and labels every sample (instruction, command and meta-action from
the simulated future, the expert's explanation and control, QA), then writes it all with the data
package's ``NuScenesWriter``. Splits are by scene, seeded.

Training scenes are driven with injected noise (DART). Their recorded future then holds later noise too,
so with ``DatasetConfig.expert_plan_labels`` every keyframe of a noisy scene is labelled with what the
expert would drive from that state (a counterfactual rollout on a copy of the world), stored as the
dataset's expert plans (``drive_vla.data.expert_plans``): the noise moves the car, never the labels.

With ``DatasetConfig.obstacle_scene_fraction`` a share of the training scenes is also written as an obstacle
scene: every keyframe branched with a car standing on the route ahead (``sim/obstacles.py``), labelled
with the expert's plan from there, beside the same recorded ego state and history.
"""

from __future__ import annotations

import copy
import multiprocessing as mp
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from drive_vla.data import labels as label_rules
from drive_vla.geometry import global_poses_to_local, rig_calibration, yaw_to_quat
from drive_vla.route_planner import usable_route_target
from drive_vla.sim.config import DatasetConfig, check_image_size
from drive_vla.sim.embedded import EmbeddedWorld
from drive_vla.sim.expert import ExpertDecision
from drive_vla.sim.obstacles import obstacle_twin, write_obstacle_scenes
from drive_vla.sim.qa import build_qa
from drive_vla.sim.scenarios import SCENARIOS
from drive_vla.sim.world import Agent
from drive_vla.types import FUTURE_STEPS, STEP_DT_S, Control, EgoState

TIME_ORIGIN_US = 1_700_000_000_000_000  # scene i starts at TIME_ORIGIN_US + i * SCENE_SPACING_US
SCENE_SPACING_US = 10**9


@dataclass
class Frame:
    """One keyframe of a recorded episode (images only for the keyframes that are written)."""

    time_s: float
    ego_pose: tuple[float, float, float]
    ego: EgoState
    agents: list[Agent]
    decision: ExpertDecision | None = None
    instruction: str = ""
    images: dict[str, np.ndarray] | None = None
    route_target: np.ndarray | None = None  # (ROUTE_TARGET_POINTS, 2) next route points, ego frame
    speed_limit_mps: float | None = None  # the cruise speed the road allows here
    junction_m: float | None = None  # the distance along the route to the next junction
    expert_future: list[Frame] | None = None  # the FUTURE_STEPS keyframes the expert would drive from here
    # The same moment with a car standing on the route ahead (obstacles.obstacle_twin): that frame and the
    # FUTURE_STEPS keyframes the expert drives from it.
    obstacle_branch: tuple[Frame, list[Frame]] | None = None


@dataclass
class Episode:
    """A recorded episode: ``keyframes`` written frames followed by FUTURE_STEPS unwritten ones (label horizon)."""

    scenario: str
    seed: int
    description: str
    frames: list[Frame]
    keyframes: int
    collision: str | None
    goal_reached: bool
    longest_standstill_s: float = 0.0  # longest time standing still away from the goal


def perturbed(control: Control, steer_offset: float, pedal_offset: float) -> Control:
    """The expert's control plus a steer offset and a throttle (> 0) or brake (< 0) offset, clipped."""
    throttle, brake = control.throttle, control.brake
    if pedal_offset >= 0.0:
        throttle = min(1.0, throttle + pedal_offset) if brake == 0.0 else throttle
        brake = max(0.0, brake - pedal_offset)
    else:
        brake = min(1.0, brake - pedal_offset)
        throttle = 0.0
    return Control(steer=float(np.clip(control.steer + steer_offset, -1.0, 1.0)), throttle=throttle, brake=brake)


def capture_frame(world: EmbeddedWorld, written: bool, image_wh: tuple[int, int] | None) -> Frame:
    """The world's current keyframe; a ``written`` one also carries the expert's decision, the
    instruction, the route target and (unless ``image_wh`` is None) the six camera images."""
    frame = Frame(world.time_s, world.ego_pose, world.ego_state(), world.agents())
    if written:
        frame.decision = world.expert_decision()
        frame.instruction = world.instruction
        frame.route_target = usable_route_target(world.route_target(), "frame.route_target")
        frame.speed_limit_mps = world.speed_limit_mps()
        frame.junction_m = world.junction_m()
        if image_wh is not None:
            frame.images = world.render(*image_wh)
    return frame


def expert_keyframes(world: EmbeddedWorld, keyframes: int) -> list[Frame]:
    """Let the expert drive ``world`` itself for ``keyframes`` keyframes; the (unwritten) frame of each."""
    frames = []
    for _ in range(keyframes):
        for _ in range(world.cfg.keyframe_every):
            world.step(None)
        frames.append(capture_frame(world, False, None))
    return frames


def counterfactual_frames(world: EmbeddedWorld, keyframes: int = FUTURE_STEPS) -> list[Frame]:
    """The next ``keyframes`` keyframes if the expert drove from the world's current state.

    Runs on a deep copy of the world (roads, traffic, random generators, expert state; the renderer is
    shared, not copied), so ``world`` itself is untouched.
    """
    return ExpertFutures(keyframes).at(world)


class ExpertFutures:
    """The expert's next keyframes from each keyframe of one episode, from as few world copies as possible.

    ``at(world)`` at consecutive keyframes: while the recorded world drives as the expert (clean keyframe
    intervals), it is in the state the copy reached one keyframe into its rollout, so the copy's frames
    shift by one and it drives one keyframe more; after a perturbed interval (``drop``) the next call
    copies the world again. The labels equal a fresh copy per keyframe (``counterfactual_frames``),
    at about 1 + 5p keyframes of simulation per keyframe instead of 6 (p: share of perturbed intervals).
    ``share`` False copies the world at every keyframe (the reference, for tests and timing).
    """

    def __init__(self, keyframes: int = FUTURE_STEPS, share: bool = True) -> None:
        self.keyframes, self.share = keyframes, share
        self.twin: EmbeddedWorld | None = None
        self.frames: list[Frame] = []

    def at(self, world: EmbeddedWorld) -> list[Frame]:
        if self.twin is None or not self.share:
            self.twin, self.frames = copy.deepcopy(world, {id(world.renderer): world.renderer}), []
        else:
            self.frames = self.frames[1:]
        self.frames += expert_keyframes(self.twin, self.keyframes - len(self.frames))
        return list(self.frames)

    def drop(self) -> None:
        """The recorded world leaves the expert's rollout (a perturbed interval): copy it again next time."""
        self.twin, self.frames = None, []


def record_episode(
    world: EmbeddedWorld,
    scenario: str,
    seed: int,
    keyframes: int,
    image_wh: tuple[int, int] | None,
    perturb: tuple[float, float, float] = (0.0, 0.0, 0.0),
    expert_futures: bool = False,
    share_futures: bool = True,
    obstacle_gaps_m: tuple[float, float] | None = None,
    obstacle_yaw_deg: float = 0.0,
    obstacle_stopping_floor: bool = True,
) -> Episode:
    """Drive the expert for ``keyframes`` keyframes (+ FUTURE_STEPS more for labels) and record them.

    With ``image_wh`` None no camera is rendered (for timing the simulation alone). ``perturb`` =
    (probability, max steer offset, max pedal offset) of noise injection per keyframe interval
    (DatasetConfig.perturb_*); the noise is seeded by ``seed``. ``expert_futures`` stores on every
    written keyframe the future the expert would drive from it (``ExpertFutures``; ``share_futures``
    False: from a fresh world copy at every keyframe). ``obstacle_gaps_m`` (low, high) branches every
    written keyframe with a car standing that far ahead (``obstacle_branch``; from its own generator, so
    the recorded episode is the same with or without it), the car turned from its lane by up to
    ``obstacle_yaw_deg`` either way; ``obstacle_stopping_floor`` False also places it closer than the expert can stop.
    """
    world.reset(scenario, seed)
    rng = np.random.default_rng(seed + 7919)
    obstacle_rng = np.random.default_rng(seed + 104_729)
    prob, max_steer, max_pedal = perturb
    frames: list[Frame] = []
    every = world.cfg.keyframe_every
    standstill = longest = 0.0
    futures = ExpertFutures(share=share_futures)
    for k in range(keyframes + FUTURE_STEPS):
        frames.append(capture_frame(world, k < keyframes, image_wh))
        if expert_futures and k < keyframes:
            frames[-1].expert_future = futures.at(world)
        if obstacle_gaps_m is not None and k < keyframes:
            frames[-1].obstacle_branch = obstacle_branch(
                world, obstacle_rng, obstacle_gaps_m, k, image_wh, obstacle_yaw_deg, obstacle_stopping_floor
            )
        if k + 1 < keyframes + FUTURE_STEPS:
            noisy = prob > 0.0 and rng.random() < prob
            offsets = (rng.uniform(-max_steer, max_steer), rng.uniform(-max_pedal, max_pedal)) if noisy else None
            if noisy:
                futures.drop()
            for _ in range(every):
                world.step(None if offsets is None else perturbed(world.expert_decision().control, *offsets))
                standing = world.ego_speed_mps < 0.5 and not world.goal_reached
                standstill = standstill + world.cfg.dt_s if standing else 0.0
                longest = max(longest, standstill)
    return Episode(scenario, seed, world.description, frames, keyframes, world.collision, world.goal_reached, longest)


def obstacle_branch(
    world: EmbeddedWorld,
    rng: np.random.Generator,
    gaps_m: tuple[float, float],
    k: int,
    image_wh: tuple[int, int] | None,
    yaw_deg: float = 0.0,
    stopping_floor: bool = True,
) -> tuple[Frame, list[Frame]] | None:
    """Keyframe ``k`` with a standing car placed ahead (``obstacles.obstacle_twin``, turned up to ``yaw_deg``)
    and the expert's next FUTURE_STEPS keyframes from there; None where no spot on the route ahead is free."""
    name = f"{world.scenario.name}-{world.seed}-standing-{k:03d}"
    twin = obstacle_twin(world, rng, gaps_m, name, yaw_deg, stopping_floor)
    if twin is None:
        return None
    return capture_frame(twin, True, image_wh), expert_keyframes(twin, FUTURE_STEPS)


def future_poses(episode: Episode, k: int) -> np.ndarray:
    """(FUTURE_STEPS, 3) ego poses of keyframes k+1..k+6 in the ego frame of keyframe k."""
    poses = np.array([episode.frames[k + j].ego_pose for j in range(1, FUTURE_STEPS + 1)])
    return global_poses_to_local(poses, episode.frames[k].ego_pose)


def sample_label(episode: Episode, k: int, ego_front_m: float) -> dict:
    """The per-sample label dict (NuScenesWriter.set_labels) of keyframe ``k``."""
    frame = episode.frames[k]
    future_xy = future_poses(episode, k)[:, :2]
    meta = label_rules.meta_action(frame.ego.speed_mps, future_xy, dt_s=STEP_DT_S)
    futures = {
        a.instance_id: [
            next((b for b in episode.frames[k + j].agents if b.instance_id == a.instance_id), None)
            for j in range(1, FUTURE_STEPS + 1)
        ]
        for a in frame.agents
    }
    d = frame.decision
    route = {} if frame.route_target is None else {"route_target": frame.route_target.round(3).tolist()}
    if frame.speed_limit_mps is not None:
        route["speed_limit_mps"] = round(float(frame.speed_limit_mps), 3)
    if frame.junction_m is not None:
        route["junction_m"] = round(float(frame.junction_m), 3)
    return {
        "QA": build_qa(frame.ego_pose, frame.ego.speed_mps, frame.agents, futures, d, meta, ego_front_m),
        "instruction": frame.instruction,
        **route,
        "command": label_rules.command_from_trajectory(future_xy).name,
        "meta_action": meta,
        "explanation": d.explanation,
        "control": {"steer": d.control.steer, "throttle": d.control.throttle, "brake": d.control.brake},
    }


def keyframe_label(episode: Episode, k: int, ego_front_m: float) -> tuple[dict, np.ndarray | None]:
    """(label dict, expert plan) of keyframe ``k``: from the expert's own future where the frame holds one
    (the plan is then that future as (FUTURE_STEPS, 3) ego-frame poses), else from the recorded future
    (plan None: the scene's next keyframes are the label)."""
    frame = episode.frames[k]
    if frame.expert_future is None:
        return sample_label(episode, k, ego_front_m), None
    return branch_label(episode, frame, frame.expert_future, ego_front_m)


def branch_label(episode: Episode, frame: Frame, future: list[Frame], ego_front_m: float) -> tuple[dict, np.ndarray]:
    """(label dict, (FUTURE_STEPS, 3) plan in the frame's ego frame) of ``frame`` followed by ``future``, the
    keyframes the expert would drive from it; ``episode`` gives the scenario, seed and outcome fields."""
    branch = replace(episode, frames=[frame, *future], keyframes=1)
    return sample_label(branch, 0, ego_front_m), future_poses(branch, 0)


def scene_record(episode: Episode, name: str, index: int, image_wh: tuple[int, int], annotation_range_m: float):
    """The writer's SceneRecord of an episode (its written keyframes)."""
    from drive_vla.data.nuscenes_writer import AnnotationRecord, CanRecord, KeyframeRecord, SceneRecord

    keyframes = []
    for k in range(episode.keyframes):
        f = episode.frames[k]
        x, y, yaw = f.ego_pose
        anns = [
            AnnotationRecord(
                instance_id=a.instance_id,
                category=a.category,
                translation=tuple(float(v) for v in a.xyz),
                size_wlh=(float(a.lwh[1]), float(a.lwh[0]), float(a.lwh[2])),
                rotation=tuple(yaw_to_quat(a.yaw_rad)),
                velocity=tuple(float(v) for v in a.velocity_xy),
            )
            for a in f.agents
            if np.hypot(a.xyz[0] - x, a.xyz[1] - y) <= annotation_range_m
        ]
        c = f.decision.control
        # Gravity is not included in the z acceleration (flat world, no IMU model).
        can = CanRecord(
            speed_mps=f.ego.speed_mps,
            steer=c.steer,
            throttle=c.throttle,
            brake=c.brake,
            accel_mps2=(float(f.ego.accel_mps2[0]), float(f.ego.accel_mps2[1]), 0.0),
            yaw_rate_rps=f.ego.yaw_rate_rps,
        )
        t_us = TIME_ORIGIN_US + index * SCENE_SPACING_US + int(round(f.time_s * 1e6))
        keyframes.append(KeyframeRecord(t_us, (x, y, 0.0), tuple(yaw_to_quat(yaw)), f.images, anns, can))
    intr, extr = rig_calibration(*image_wh)
    description = f"{episode.description}; instruction: {episode.frames[0].instruction}; seed {episode.seed}"
    return SceneRecord(name, description, keyframes, intr, extr)


def obstacle_scene(episode: Episode, name: str, index: int, image_wh: tuple[int, int], cfg: DatasetConfig):
    """(SceneRecord, labels, plans) of the episode's keyframes with their obstacle branches: each keyframe
    shows its standing car and carries the expert's plan from there; the ego's state, history and CAN
    stay the recorded ones. A keyframe without a branch (no free spot ahead) keeps its own view and label."""
    front = cfg.world.ego.front_m
    frames, labels, plans = [], [], []
    for k in range(episode.keyframes):
        f = episode.frames[k]
        if f.obstacle_branch is None:
            label, plan = keyframe_label(episode, k, front)
            frames.append(f)
        else:
            branch, future = f.obstacle_branch
            label, plan = branch_label(episode, branch, future, front)
            frames.append(replace(branch, decision=f.decision))  # the CAN bus holds what the ego did
        labels.append(label)
        plans.append(future_poses(episode, k) if plan is None else plan)
    shadow = replace(episode, frames=frames, keyframes=len(frames))
    return scene_record(shadow, name, index, image_wh, cfg.annotation_range_m), labels, plans


def _record_job(job: tuple) -> tuple:
    """Worker: record scene ``index`` (re-drawing the seed after a collision), return its scenes
    ([(SceneRecord, labels, plans)]: the scene, then its obstacle scene where ``shadow`` names one) and stats.

    ``noisy`` (training scenes) turns on the config's noise injection; ``shadow`` is (name, index) of the
    scene's obstacle scene (``DatasetConfig.obstacle_scene_fraction``), or None.
    """
    index, name, scenario, seed, cfg, image_wh, noisy, shadow = job
    world = _worker_world(cfg)
    attempts = 0
    gaps = cfg.obstacle_gap_m if shadow is not None else None
    for attempt in range(cfg.max_attempts):
        attempts += 1
        s = training_seed(int(seed) + 1_000_003 * attempt)
        perturb = (cfg.perturb_prob, cfg.perturb_steer, cfg.perturb_pedal) if noisy else (0.0, 0.0, 0.0)
        futures = noisy and cfg.expert_plan_labels and cfg.perturb_prob > 0.0
        episode = record_episode(
            world,
            scenario,
            s,
            cfg.keyframes_per_scene,
            image_wh,
            perturb,
            futures,
            True,
            obstacle_gaps_m=gaps,
            obstacle_yaw_deg=cfg.obstacle_yaw_deg,
            obstacle_stopping_floor=cfg.obstacle_stopping_floor,
        )
        if episode.collision is None and episode.longest_standstill_s < cfg.max_standstill_s:
            break
    front = cfg.world.ego.front_m
    labels, plans = zip(*(keyframe_label(episode, k, front) for k in range(episode.keyframes)))
    scenes = [(scene_record(episode, name, index, image_wh, cfg.annotation_range_m), list(labels), list(plans))]
    if shadow is not None:
        scenes.append(obstacle_scene(episode, *shadow, image_wh, cfg))
    stats = {
        "scenario": scenario,
        "seed": episode.seed,
        "attempts": attempts,
        "collision": episode.collision,
        "stalled": episode.longest_standstill_s >= cfg.max_standstill_s,
        "goal": episode.goal_reached,
        "obstacle_samples": sum(f.obstacle_branch is not None for f in episode.frames[: episode.keyframes]),
    }
    return scenes, stats


_WORLD: tuple[DatasetConfig, EmbeddedWorld] | None = None


def _worker_world(cfg: DatasetConfig) -> EmbeddedWorld:
    global _WORLD
    if _WORLD is None or _WORLD[0] is not cfg:
        _WORLD = (cfg, EmbeddedWorld(cfg.world))
    return _WORLD[1]


def scene_plan(scenes: int, seed: int, scenario_types: Sequence[str] | None = None) -> list[tuple[str, int]]:
    """(scenario, episode seed) of each scene: scenario types balanced and shuffled, seeds from ``seed``."""
    types = sorted(SCENARIOS) if scenario_types is None else list(scenario_types)
    for t in types:
        if t not in SCENARIOS:
            raise ValueError(f"scenario_types: got {t!r}, expected names among {sorted(SCENARIOS)}")
    if not types:
        raise ValueError("scenario_types: got an empty list, expected at least one scenario name")
    rng = np.random.default_rng(seed)
    order = [types[i % len(types)] for i in range(scenes)]
    order = [order[i] for i in rng.permutation(scenes)]
    seeds = np.random.SeedSequence(seed).generate_state(max(scenes, 1))[:scenes]
    return [(order[i], training_seed(int(seeds[i]))) for i in range(scenes)]


HELD_OUT_SEEDS = range(900_000, 1_000_000)  # closed-loop evaluation routes (configs/eval/closed_loop_*.yaml)


def training_seed(seed: int) -> int:
    """A scene seed in [0, 2**31) outside HELD_OUT_SEEDS, so evaluation routes never become training data."""
    s = int(seed) % 2**31
    return s + len(HELD_OUT_SEEDS) if s in HELD_OUT_SEEDS else s


def split_scenes(names: Sequence[str], seed: int, val_fraction: float) -> dict[str, list[str]]:
    """Official-style split by scene: a seeded ``val_fraction`` of the scenes in "val", the rest in "train"."""
    n = len(names)
    n_val = int(round(val_fraction * n)) if n >= 2 else 0
    if val_fraction > 0 and n >= 2:
        n_val = max(1, n_val)
    val = set(np.random.default_rng(seed + 1).permutation(n)[:n_val].tolist())
    return {
        "train": [s for i, s in enumerate(names) if i not in val],
        "val": [s for i, s in enumerate(names) if i in val],
    }


def make_embedded(
    out_dir: str | Path,
    scenes: int,
    seed: int,
    version: str = "v1.0-embedded",
    image_wh: tuple[int, int] = (256, 144),
    scenario_types: Sequence[str] | None = None,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
    config: DatasetConfig | None = None,
    overwrite: bool = False,
) -> dict:
    """Write an embedded-world dataset in nuScenes format to ``out_dir``.

    Args:
        out_dir: dataroot (must not hold another dataset unless ``overwrite``).
        scenes: number of scenes (one episode each, ``config.keyframes_per_scene`` keyframes at 2 Hz).
        seed: everything (scenario order, episode seeds, splits) follows from it.
        version: table folder name.
        image_wh: camera image (width, height).
        scenario_types: scenario names to draw from (default: all), balanced across scenes.
        workers: processes recording scenes in parallel (the writer stays in this process).
        progress: called as ``progress(scenes_done, scenes)`` after each scene.
        config: recording settings and the world's config.
        overwrite: replace an existing dataset of the same version.

    Returns:
        A summary: dataroot, version, scenes, samples, splits (scene counts), seconds, per-scenario
        counts, collisions and stalled scenes (still so after ``max_attempts``), goals reached, re-drawn
        scenes.
    """
    from drive_vla.data.can_bus import scene_name
    from drive_vla.data.expert_plans import write_expert_plans
    from drive_vla.data.nuscenes_writer import NuScenesWriter

    cfg = config or DatasetConfig()
    if isinstance(scenes, bool) or not isinstance(scenes, int) or scenes < 1:
        raise ValueError(f"scenes: got {scenes!r}, expected a positive integer")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers: got {workers!r}, expected a positive integer")
    if not isinstance(image_wh, (tuple, list)) or len(image_wh) != 2:
        raise ValueError(f"image_wh: got {image_wh!r}, expected (width, height)")
    check_image_size("image_wh", *image_wh)
    image_wh = (int(image_wh[0]), int(image_wh[1]))
    plan = scene_plan(scenes, seed, scenario_types)
    names = [scene_name(i) for i in range(scenes)]
    splits = split_scenes(names, seed, cfg.val_fraction)
    val_names = set(splits.get("val", []))
    shadows = obstacle_scenes(splits["train"], seed, cfg.obstacle_scene_fraction, scenes)
    splits["train"] = splits["train"] + [shadow_name for shadow_name, _ in shadows.values()]
    # noise injection only in training scenes: validation stays clean expert driving
    jobs = [
        (i, names[i], sc, s, cfg, image_wh, names[i] not in val_names, shadows.get(names[i]))
        for i, (sc, s) in enumerate(plan)
    ]
    t0 = time.perf_counter()
    summary = {
        "collisions": 0,
        "stalled": 0,
        "goals": 0,
        "redrawn": 0,
        "scenarios": {},
        "obstacle_scenes": len(shadows),
        "obstacle_samples": 0,
    }
    samples = 0
    plans: dict[str, np.ndarray] = {}
    with NuScenesWriter(out_dir, version, overwrite=overwrite) as writer:
        if workers > 1:
            ctx = mp.get_context("spawn")
            with ctx.Pool(min(workers, scenes)) as pool:
                results = pool.imap(_record_job, jobs)
                samples = _write_all(writer, results, scenes, summary, progress, plans)
        else:
            samples = _write_all(writer, map(_record_job, jobs), scenes, summary, progress, plans)
        writer.finish(splits)
    write_expert_plans(out_dir, version, plans)  # an empty file where no scene has expert plans
    if shadows:
        write_obstacle_scenes(out_dir, version, {shadow_name: scene for scene, (shadow_name, _) in shadows.items()})
    summary["expert_plans"] = len(plans)
    return {
        "dataroot": str(out_dir),
        "version": version,
        "scenes": scenes + len(shadows),
        "samples": samples,
        "splits": {k: len(v) for k, v in splits.items()},
        "seconds": time.perf_counter() - t0,
        **summary,
    }


def _write_all(writer, results, scenes: int, summary: dict, progress, plans: dict[str, np.ndarray]) -> int:
    samples = 0
    for done, (records, stats) in enumerate(results, start=1):
        for record, labels, scene_plans in records:
            tokens = writer.add_scene(record)
            for token, label, plan in zip(tokens, labels, scene_plans):
                writer.set_labels(token, label)
                if plan is not None:
                    plans[token] = plan
            samples += len(tokens)
        summary["obstacle_samples"] += stats["obstacle_samples"]  # 0 unless the scene has an obstacle scene
        summary["collisions"] += stats["collision"] is not None
        summary["stalled"] += stats["stalled"]
        summary["goals"] += bool(stats["goal"])
        summary["redrawn"] += stats["attempts"] > 1
        summary["scenarios"][stats["scenario"]] = summary["scenarios"].get(stats["scenario"], 0) + 1
        if progress is not None:
            progress(done, scenes)
    return samples


def obstacle_scenes(train: Sequence[str], seed: int, fraction: float, scenes: int) -> dict[str, tuple[str, int]]:
    """{training scene: (name, index) of its obstacle scene} for a seeded ``fraction`` of ``train``; the
    obstacle scenes are numbered after the ``scenes`` recorded ones."""
    from drive_vla.data.can_bus import scene_name

    n = int(round(fraction * len(train)))
    chosen = sorted(np.random.default_rng(seed + 2).permutation(len(train))[:n].tolist())
    return {train[i]: (scene_name(scenes + j), scenes + j) for j, i in enumerate(chosen)}


def with_keyframes(cfg: DatasetConfig, keyframes: int) -> DatasetConfig:
    """A copy of ``cfg`` recording ``keyframes`` keyframes per scene."""
    return replace(cfg, keyframes_per_scene=keyframes)
