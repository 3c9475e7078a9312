"""On-policy rollouts in the embedded world (policy mixed with the expert), labelled by the expert, written as scenes.

Per keyframe interval the expert drives with probability ``beta``, else the policy's plan drives through
the controller (as in the closed-loop drive loop). Every visited keyframe is labelled by the expert: its
decision now (control, explanation) and the FUTURE_STEPS keyframes it would drive from this state, from a
counterfactual rollout on a copy of the world; the command, meta-action and QA follow from that future
exactly as for recorded expert scenes (``dataset.sample_label``), and the future itself is written as the
sample's expert plan (``drive_vla.data.expert_plans``). Episodes stop early at a collision or far off the
route; the keyframes visited until then are kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from drive_vla.closed_loop import safe_control, safe_plan
from drive_vla.control.base import Controller
from drive_vla.sim.dataset import Episode, Frame, branch_label, capture_frame, counterfactual_frames, scene_record
from drive_vla.sim.embedded import EmbeddedWorld
from drive_vla.types import Planner


def expert_label(world: EmbeddedWorld, frame: Frame, ego_front_m: float) -> tuple[dict, np.ndarray]:
    """(label dict, (FUTURE_STEPS, 3) expert plan in the frame's ego frame) of the world's current keyframe."""
    meta = Episode(world.scenario.name, world.seed, world.description, [], 0, world.collision, world.goal_reached)
    return branch_label(meta, frame, counterfactual_frames(world), ego_front_m)


@dataclass
class OnPolicyEpisode:
    """The visited keyframes of one rollout with their expert labels and plans.

    Attributes:
        episode: the visited keyframes (all written; ``episode.keyframes == len(episode.frames)``).
        labels: per keyframe, the label dict (``NuScenesWriter.set_labels`` format).
        plans: per keyframe, (FUTURE_STEPS, 3) expert poses [x, y, yaw] in that keyframe's ego frame.
        stats: policy_intervals, expert_intervals, end ("collision", "off_route", "goal", "timeout",
            "length"), planner_errors.
    """

    episode: Episode
    labels: list[dict] = field(default_factory=list)
    plans: list[np.ndarray] = field(default_factory=list)
    stats: dict = field(default_factory=dict)


def rollout(
    world: EmbeddedWorld,
    planner: Planner,
    controller: Controller,
    scenario: str,
    seed: int,
    beta: float,
    rng: np.random.Generator,
    max_keyframes: int,
    image_wh: tuple[int, int],
    max_off_route_m: float,
) -> OnPolicyEpisode:
    """Drive one episode mixing expert and policy, labelling every visited keyframe with the expert.

    Args:
        world: the embedded world (reset here to ``scenario``/``seed``).
        planner: the policy (``predict_batch``); called once per policy-driven interval.
        controller: turns the policy's plan into controls at every world step.
        beta: probability that the expert drives a keyframe interval.
        rng: draws who drives each interval.
        max_keyframes: keyframes visited at most.
        image_wh: camera size of the policy's observations and of the written images.
        max_off_route_m: the episode stops once the ego is farther than this from the route.
    """
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"beta: got {beta!r}, expected a probability in [0, 1]")
    world.reset(scenario, seed)
    planner.reset()
    controller.reset()
    cfg = world.cfg
    front = cfg.ego.front_m
    out = OnPolicyEpisode(Episode(scenario, int(seed), world.description, [], 0, None, False))
    n_policy = n_errors = 0
    expert_drove = True
    end = "length"
    for _ in range(max_keyframes):
        obs = world.observation(*image_wh)
        frame = capture_frame(world, True, None)
        frame.images = dict(obs.images)
        label, plan = expert_label(world, frame, front)
        out.episode.frames.append(frame)
        out.labels.append(label)
        out.plans.append(plan)
        if rng.random() < beta:
            expert_drove = True
            for _ in range(cfg.keyframe_every):
                world.step(None)
        else:
            n_policy += 1
            if expert_drove:
                controller.reset()  # its integrators hold nothing of the expert's driving
            expert_drove = False
            policy_plan, error, _ = safe_plan(planner, obs)
            n_errors += error is not None
            for _ in range(cfg.keyframe_every):
                control, _ = safe_control(controller, policy_plan, world.ego_state(), cfg.dt_s)
                world.step(control)
        if world.collision is not None:
            end = "collision"
        elif world.distance_from_route_m > max_off_route_m:
            end = "off_route"
        elif world.done:
            end = world.done_reason or "done"
        if end != "length":
            break
    ep = out.episode
    ep.keyframes = len(ep.frames)
    ep.collision, ep.goal_reached = world.collision, world.goal_reached
    out.stats = {
        "scenario": scenario,
        "seed": int(seed),
        "keyframes": ep.keyframes,
        "policy_intervals": n_policy,
        "expert_intervals": ep.keyframes - n_policy,
        "planner_errors": n_errors,
        "end": end,
    }
    return out


def write_onpolicy_dataset(
    out_dir: str | Path,
    episodes: list[OnPolicyEpisode],
    image_wh: tuple[int, int],
    annotation_range_m: float,
    version: str = "v1.0-embedded",
) -> dict:
    """Write rollouts as a nuScenes-format dataset (all scenes in "train") with labels and expert plans.

    Returns a summary: dataroot, version, scenes, samples.
    """
    from drive_vla.data.can_bus import scene_name
    from drive_vla.data.expert_plans import write_expert_plans
    from drive_vla.data.nuscenes_writer import NuScenesWriter

    kept = [e for e in episodes if e.episode.keyframes > 0]
    if not kept:
        raise ValueError("episodes: got none with a visited keyframe, expected at least one")
    names = [scene_name(i) for i in range(len(kept))]
    plans: dict[str, np.ndarray] = {}
    with NuScenesWriter(out_dir, version, overwrite=True) as writer:
        for i, (name, e) in enumerate(zip(names, kept)):
            tokens = writer.add_scene(scene_record(e.episode, name, i, image_wh, annotation_range_m))
            for token, label, plan in zip(tokens, e.labels, e.plans):
                writer.set_labels(token, label)
                plans[token] = plan
        writer.finish({"train": names, "val": []})
    write_expert_plans(out_dir, version, plans)
    return {"dataroot": str(out_dir), "version": version, "scenes": len(kept), "samples": len(plans)}
