"""Open-loop evaluation runner: any Planner over a nuScenes-format reader -> per-protocol metrics report.

The runner reads each sample once, asks every planner for a plan, converts plans and ground truth from
the canonical ego frame to the LiDAR frame once (drive_vla.geometry) and hands arrays to the pure
metric functions. Each sample's own LIDAR_TOP calibration is used where the reader has it
(``lidar2ego``), and each protocol's agents are selected from the dataset's annotations
(``annotations``: past, present and future keyframes, categories, instances, visibility); a plain
sequence of Samples falls back to the nominal mount and its future boxes. A planner that raises, returns the wrong number of plans, a non-finite or wrongly
shaped trajectory is recorded per sample as a failure; failed samples are left out of that planner's
metrics and listed in its report.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from drive_vla.data.labels import meta_action as meta_action_of_plan
from drive_vla.data.labels import meta_action_from_text
from drive_vla.eval.box_collision import path_headings
from drive_vla.eval.language import meta_action_accuracy, rouge_l_f1
from drive_vla.eval.occupancy import GROUP_CODE, AgentBoxes, category_group
from drive_vla.eval.openloop_metrics import BOX_OVERLAP, NUM_STEPS, openloop_metrics, resolve_protocols
from drive_vla.eval.openloop_protocols import STP3_PAST_FRAMES, SampleAgents, stp3_in_sample_set
from drive_vla.geometry import NUSCENES_LIDAR2EGO, ego_boxes_to_lidar, ego_poses_to_lidar_xy
from drive_vla.types import STEP_DT_S, Observation, Planner, Sample

MAX_LISTED_FAILURES = 200


class NoValidSamplesError(ValueError):
    """The split (or the requested protocol) leaves no sample to evaluate."""


@dataclass
class GroundTruth:
    """Ground truth of the evaluated samples, LiDAR frame (x right, y forward)."""

    tokens: list[str] = field(default_factory=list)
    scenes: list[str] = field(default_factory=list)
    xy: list[np.ndarray] = field(default_factory=list)  # N x (6, 2)
    yaw_rad: list[np.ndarray] = field(default_factory=list)  # N x (6,), CCW from LiDAR +x
    mask: list[np.ndarray] = field(default_factory=list)  # N x (6,) bool
    boxes: list[AgentBoxes] = field(default_factory=list)  # one per sample, group-coded (plots, box overlap)
    raster: dict[str, list[AgentBoxes]] = field(default_factory=lambda: {"stp3": [], "uniad": []})
    stp3_samples: list[bool] = field(default_factory=list)  # in ST-P3's sample set
    stp3_warps: list[np.ndarray] = field(default_factory=list)  # N x (6, 2, 3) ST-P3 raster warps (NaN: none)
    lidar2ego: list[np.ndarray] = field(default_factory=list)  # N x (4, 4)
    has_boxes: list[bool] = field(default_factory=list)
    meta_actions: list[str | None] = field(default_factory=list)
    explanations: list[str | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.tokens)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, AgentBoxes]:
        """(N, 6, 2) xy, (N, 6) yaw, (N, 6) mask and all boxes."""
        return np.stack(self.xy), np.stack(self.yaw_rad), np.stack(self.mask), AgentBoxes.concatenate(self.boxes)


@dataclass
class ModelOutput:
    """What one planner produced; rows of failed samples hold NaN."""

    name: str
    xy: list[np.ndarray] = field(default_factory=list)  # N x (6, 2) LiDAR frame
    yaw_rad: list[np.ndarray] = field(default_factory=list)  # N x (6,) CCW from LiDAR +x
    failures: list[dict[str, Any]] = field(default_factory=list)
    meta_actions: list[str | None] = field(default_factory=list)  # what the plan (or its explanation) states
    plan_meta_actions: list[str | None] = field(default_factory=list)  # labels.meta_action of the planned path
    texts: list[str | None] = field(default_factory=list)
    predict_s: float = 0.0

    @property
    def ok(self) -> np.ndarray:
        return np.array([bool(np.all(np.isfinite(x))) for x in self.xy], dtype=bool)


@dataclass
class OpenLoopRun:
    """Everything an open-loop evaluation collected: ground truth and each planner's outputs."""

    gt: GroundTruth
    models: dict[str, ModelOutput]
    dataset: dict[str, Any]


def ego_plan_to_lidar(
    poses_xyyaw: np.ndarray, heading: str = "auto", lidar2ego: np.ndarray = NUSCENES_LIDAR2EGO
) -> tuple[np.ndarray, np.ndarray]:
    """(T, 3) ego-frame poses of the current sample -> (T, 2) LiDAR-origin positions, (T,) LiDAR headings.

    ``heading="auto"`` uses the plan's headings when any is non-zero and otherwise the direction of the
    path (planners that predict positions only leave yaw at 0, which would misplace the LiDAR origin,
    0.94 m ahead of the ego origin, in turns); "plan" always uses the given headings; "path" always
    derives them from the path. ``lidar2ego`` is the sample's LIDAR_TOP calibration.
    """
    poses = np.asarray(poses_xyyaw, dtype=np.float64).copy()
    if heading not in ("auto", "plan", "path"):
        raise ValueError(f"heading: got {heading!r}, expected 'auto', 'plan' or 'path'")
    if heading == "path" or (heading == "auto" and not np.any(np.abs(poses[:, 2]) > 1e-6)):
        poses[:, 2] = path_headings(poses[None, :, :2], initial_rad=0.0)[0]
    xy = ego_poses_to_lidar_xy(poses, lidar2ego)
    _, yaw = ego_boxes_to_lidar(np.zeros((len(poses), 3)), poses[:, 2], lidar2ego)
    return xy, np.asarray(yaw, dtype=np.float64)


def _lidar2ego(reader: Any, index: int) -> np.ndarray:
    return reader.lidar2ego(index) if hasattr(reader, "lidar2ego") else NUSCENES_LIDAR2EGO


def sample_agents(reader: Any, index: int, sample: Sample) -> SampleAgents:
    """The boxes around sample ``index`` for the protocols: the reader's annotations of the past two,
    present and six future keyframes where it has them, else the Sample's future boxes (ego frame)."""
    lidar2ego = _lidar2ego(reader, index)
    if hasattr(reader, "annotations") and hasattr(reader, "ego_pose"):
        steps, recs, in_scene = [], [], set()
        for step in range(-2, NUM_STEPS + 1):
            rec = reader.annotations(index, step)
            if rec is not None:
                steps.append(np.full(len(rec["category"]), step))
                recs.append(rec)
                in_scene.add(step)
        cat = tuple(c for r in recs for c in r["category"])
        future = None  # ST-P3's raster warp needs the ego poses of all six future keyframes of the scene
        if in_scene.issuperset(range(1, NUM_STEPS + 1)):
            future = np.stack([reader.ego_pose(index + k) for k in range(1, NUM_STEPS + 1)])
        # UniAD reframes each future box from its own keyframe's LiDAR frame: the pose of every step there is
        step_poses = np.stack(
            [reader.ego_pose(index + k) if k in in_scene else np.full((4, 4), np.nan) for k in range(1, NUM_STEPS + 1)]
        )
        return SampleAgents(
            np.concatenate(steps).astype(np.int64), np.concatenate([r["xyz"] for r in recs]).reshape(-1, 3),
            np.concatenate([r["heading"] for r in recs]).reshape(-1, 3),
            np.concatenate([r["wlh"] for r in recs]).reshape(-1, 3), cat,
            tuple(t for r in recs for t in r["instance"]), np.concatenate([r["visibility"] for r in recs]),
            reader.ego_pose(index), lidar2ego, future_ego2global=future, step_ego2global=step_poses,
        )  # fmt: skip
    boxes = sample.targets.future_boxes
    steps = np.concatenate([np.full(len(b), k + 1) for k, b in enumerate(boxes)] + [np.zeros(0)]).astype(np.int64)
    yaw = np.concatenate([b.yaw_rad for b in boxes] + [np.zeros(0)]).astype(np.float64)
    return SampleAgents(
        steps, np.concatenate([b.xyz for b in boxes] + [np.zeros((0, 3))]).astype(np.float64),
        np.stack([np.cos(yaw), np.sin(yaw), np.zeros_like(yaw)], -1),
        np.concatenate([b.lwh[:, [1, 0, 2]] for b in boxes] + [np.zeros((0, 3))]).astype(np.float64),
        tuple(c for b in boxes for c in (b.category or ("other",) * len(b))),
        tuple(t for k, b in enumerate(boxes) for t in (b.instance or [f"{k}-{m}" for m in range(len(b))])),
        np.full(len(steps), 4), np.eye(4), lidar2ego, past_known=False,
    )  # fmt: skip


def _sample_ground_truth(
    sample: Sample, index: int, lidar2ego: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, AgentBoxes, bool]:
    traj = sample.targets.trajectory
    if len(traj) != NUM_STEPS or abs(traj.dt_s - STEP_DT_S) > 1e-6:
        raise ValueError(
            f"sample {sample.meta.token}: targets.trajectory has {len(traj)} steps at {traj.dt_s} s,"
            f" expected {NUM_STEPS} at {STEP_DT_S} s"
        )
    xy, yaw = ego_plan_to_lidar(traj.poses, heading="plan", lidar2ego=lidar2ego)
    parts = []
    for step, b in enumerate(sample.targets.future_boxes):
        if len(b) == 0:
            continue
        centre, byaw = ego_boxes_to_lidar(b.xyz, b.yaw_rad, lidar2ego)
        cats = b.category or ("other",) * len(b)
        parts.append(
            AgentBoxes(
                np.full(len(b), index, dtype=np.int64),
                np.full(len(b), step, dtype=np.int64),
                np.asarray(centre[:, :2], dtype=np.float64),
                b.lwh[:, 0].astype(np.float64),
                b.lwh[:, 1].astype(np.float64),
                np.asarray(byaw, dtype=np.float64),
                np.array([GROUP_CODE[category_group(c)] for c in cats], dtype=np.int8),
            )
        )
    return xy, yaw, traj.mask.copy(), AgentBoxes.concatenate(parts), bool(sample.targets.future_boxes)


def _plan_poses(plan: Any) -> np.ndarray:
    """(6, 3) ego-frame poses of a plan, or ValueError saying what is wrong with it."""
    traj = getattr(plan, "trajectory", None)
    xy = getattr(traj, "xy", None)
    if xy is None:
        raise ValueError(f"plan: got {type(plan).__name__}, expected a Plan with a trajectory")
    xy = np.asarray(xy, dtype=np.float64)
    if xy.shape != (NUM_STEPS, 2):
        raise ValueError(f"plan.trajectory.xy: got shape {xy.shape}, expected ({NUM_STEPS}, 2)")
    yaw = getattr(traj, "yaw_rad", None)
    yaw = np.zeros(NUM_STEPS) if yaw is None else np.asarray(yaw, dtype=np.float64).reshape(-1)
    if yaw.shape != (NUM_STEPS,):
        raise ValueError(f"plan.trajectory.yaw_rad: got shape {yaw.shape}, expected ({NUM_STEPS},)")
    if not (np.all(np.isfinite(xy)) and np.all(np.isfinite(yaw))):
        raise ValueError("plan.trajectory: got NaN or inf, expected finite waypoints")
    dt = float(getattr(traj, "dt_s", STEP_DT_S))
    if abs(dt - STEP_DT_S) > 1e-6:
        raise ValueError(f"plan.trajectory.dt_s: got {dt}, expected {STEP_DT_S}")
    return np.concatenate([xy, yaw[:, None]], axis=1)


def _explain(planner: Planner, observations: Sequence[Observation]) -> list[Any]:
    """Explanations for a batch (one ``explain_batch`` call where the planner has it, else ``explain`` per
    sample); None for planners that cannot explain, an exception for a sample whose explanation failed."""
    if hasattr(planner, "explain_batch"):
        try:
            texts = list(planner.explain_batch(list(observations)))
            if len(texts) == len(observations):
                return texts
        except Exception:  # noqa: BLE001 - fall back to one call per sample to isolate the failure
            pass
    if not hasattr(planner, "explain"):
        return [None] * len(observations)
    out: list[Any] = []
    for obs in observations:
        try:
            out.append(planner.explain(obs))
        except Exception as exc:  # noqa: BLE001 - a planner failure is data for the report
            out.append(exc)
    return out


def _predict(planner: Planner, observations: Sequence[Observation]) -> list[Any]:
    """Plans for a batch, or per-sample exceptions when the batch call fails."""
    try:
        plans = list(planner.predict_batch(list(observations)))
        if len(plans) == len(observations):
            return plans
        batch_error: Exception = ValueError(f"predict_batch: got {len(plans)} plans, expected {len(observations)}")
    except Exception as exc:  # noqa: BLE001 - a planner failure is data for the report
        batch_error = exc
    if len(observations) == 1:
        return [batch_error]
    out: list[Any] = []
    for obs in observations:  # isolate the failing samples
        out.extend(_predict(planner, [obs]))
    return out


def _batches(reader: Any, n: int, batch_size: int) -> Iterator[tuple[list[tuple[int, Sample]], bool]]:
    """Consecutive samples in batches that never span two scenes; the flag marks a new scene."""
    batch: list[tuple[int, Sample]] = []
    scene: str | None = None
    new_scene = True
    for i in range(n):
        sample = reader[i]
        if batch and (len(batch) == batch_size or sample.meta.scene != scene):
            yield batch, new_scene
            batch, new_scene = [], sample.meta.scene != scene
        scene = sample.meta.scene
        batch.append((i, sample))
    if batch:
        yield batch, new_scene


def run_openloop(
    planners: Mapping[str, Planner],
    reader: Any,
    batch_size: int = 8,
    max_samples: int | None = None,
    explain: bool = False,
    heading: str = "auto",
    progress: Callable[[int, int], None] | None = None,
) -> OpenLoopRun:
    """Run every planner over the reader's samples (in order) and collect ground truth and plans.

    Args:
        planners: name -> Planner (``predict_batch`` and ``reset``); ``reset`` is called at each scene start.
        reader: a NuScenesReader or any sequence of Samples (``len``, ``[i]``).
        batch_size: observations per ``predict_batch`` call (batches never span two scenes).
        max_samples: evaluate the first N samples only.
        explain: also call ``planner.explain(obs)`` (where it exists) for the explanation text; the
            meta-action its sentence states (labels.meta_action_from_text) is the plan's meta-action when
            the plan carries none.
        heading: how predicted headings are obtained, see ego_plan_to_lidar.
        progress: called with (done, total) after each batch.
    """
    if not planners:
        raise ValueError("planners: got none, expected at least one name -> Planner")
    if batch_size < 1:
        raise ValueError(f"batch_size: got {batch_size}, expected >= 1")
    n = len(reader) if max_samples is None else min(len(reader), int(max_samples))
    if n <= 0:
        split = getattr(reader, "split", None)
        raise NoValidSamplesError(
            f"reader: split {split!r} has {len(reader)} samples (max_samples={max_samples}), expected at least one"
        )
    gt = GroundTruth()
    outs = {name: ModelOutput(name) for name in planners}
    for batch, new_scene in _batches(reader, n, batch_size):
        for idx, sample in batch:
            lidar2ego = _lidar2ego(reader, idx)
            xy, yaw, mask, boxes, has_boxes = _sample_ground_truth(sample, idx, lidar2ego)
            agents = sample_agents(reader, idx, sample)
            for family, parts in gt.raster.items():
                parts.append(agents.boxes_for(family, idx))
            # plain Samples carry no scene position: only ST-P3's full-future part of the rule applies
            past = sample.meta.index_in_scene if agents.past_known else STP3_PAST_FRAMES
            gt.stp3_samples.append(stp3_in_sample_set(sample.meta.scene, past, bool(mask.all())))
            gt.stp3_warps.append(agents.stp3_warps())
            gt.lidar2ego.append(lidar2ego)
            gt.tokens.append(sample.meta.token)
            gt.scenes.append(sample.meta.scene)
            gt.xy.append(xy)
            gt.yaw_rad.append(yaw)
            gt.mask.append(mask)
            gt.boxes.append(boxes)
            gt.has_boxes.append(has_boxes)
            gt.meta_actions.append(sample.targets.meta_action)
            gt.explanations.append(sample.targets.explanation)
        observations = [s.observation for _, s in batch]
        for name, planner in planners.items():
            out = outs[name]
            t0 = time.perf_counter()
            if new_scene:
                planner.reset()
            results = _predict(planner, observations)
            out.predict_s += time.perf_counter() - t0
            texts = _explain(planner, observations) if explain else [None] * len(observations)
            for (idx, sample), res, explained in zip(batch, results, texts):
                try:
                    if isinstance(res, Exception):
                        raise res
                    poses = _plan_poses(res)
                    xy, yaw = ego_plan_to_lidar(poses, heading, gt.lidar2ego[idx])
                    text = getattr(res, "text", None)
                    meta = getattr(res, "meta_action", None)
                    if isinstance(explained, Exception):
                        raise explained
                    if explained is not None:
                        text = explained
                        meta = meta or meta_action_from_text(text)
                    speed = sample.observation.ego.speed_mps
                    out.xy.append(xy)
                    out.yaw_rad.append(yaw)
                    out.meta_actions.append(meta)
                    out.plan_meta_actions.append(meta_action_of_plan(speed, poses[:, :2], dt_s=STEP_DT_S))
                    out.texts.append(text)
                except Exception as exc:  # noqa: BLE001
                    out.failures.append(
                        {"index": idx, "token": sample.meta.token, "error": f"{type(exc).__name__}: {exc}"}
                    )
                    out.xy.append(np.full((NUM_STEPS, 2), np.nan))
                    out.yaw_rad.append(np.full(NUM_STEPS, np.nan))
                    out.meta_actions.append(None)
                    out.plan_meta_actions.append(None)
                    out.texts.append(None)
        if progress is not None:
            progress(len(gt), n)
    dataset = {
        "dataroot": str(getattr(reader, "dataroot", "")) or None,
        "version": getattr(reader, "version", None),
        "split": getattr(reader, "split", None),
        "num_samples": n,
        "samples_without_boxes": int(np.sum(~np.array(gt.has_boxes))),
        "samples_with_full_future": int(np.sum(np.stack(gt.mask).all(1))),
        "samples_in_stp3_set": int(np.sum(gt.stp3_samples)),
        "lidar_calibration": "per sample" if hasattr(reader, "lidar2ego") else "nominal mount",
        "agents": "dataset annotations"
        if hasattr(reader, "annotations")
        else "future boxes of the Samples (no past frames or visibility: ST-P3's first-seen and past-frame rules not applied)",
    }
    return OpenLoopRun(gt, outs, dataset)


def _subset_boxes(boxes: AgentBoxes, keep: np.ndarray) -> AgentBoxes:
    new_index = np.cumsum(keep) - 1
    sel = keep[boxes.sample]
    return AgentBoxes(
        new_index[boxes.sample[sel]], boxes.step[sel], boxes.xy[sel], boxes.length_m[sel], boxes.width_m[sel],
        boxes.yaw_rad[sel], boxes.group[sel],
    )  # fmt: skip


def model_report(run: OpenLoopRun, name: str, protocol: str | Sequence[str] = "all") -> dict[str, Any]:
    """Metrics of one planner of a run: protocol -> numbers, plus failures, language and timing."""
    out = run.models[name]
    gt_xy, gt_yaw, mask, boxes = run.gt.arrays()
    ok = out.ok
    report: dict[str, Any] = {"num_samples": len(ok), "num_predicted": int(ok.sum())}
    if ok.any():
        raster = {k: _subset_boxes(AgentBoxes.concatenate(v), ok) for k, v in run.gt.raster.items()}
        report.update(
            openloop_metrics(
                np.stack(out.xy)[ok], gt_xy[ok], mask[ok], raster, protocol,
                pred_yaw_rad=np.stack(out.yaw_rad)[ok], gt_yaw_rad=gt_yaw[ok],
                stp3_samples=np.asarray(run.gt.stp3_samples, bool)[ok], lidar_boxes=_subset_boxes(boxes, ok),
                stp3_warps=np.stack(run.gt.stp3_warps)[ok],
            )
        )  # fmt: skip
    else:
        for p in resolve_protocols(protocol):
            report[p.name] = None
        report["error"] = "the planner produced no valid plan"
    report["failures"] = {"count": len(out.failures), "samples": out.failures[:MAX_LISTED_FAILURES]}
    if len(out.failures) > MAX_LISTED_FAILURES:
        report["failures"]["listed"] = MAX_LISTED_FAILURES
    if any(out.meta_actions) or any(out.texts):
        report["language"] = {
            "meta_action": meta_action_accuracy(out.meta_actions, run.gt.meta_actions),
            # the stated meta-action against the one of the planner's own path: does it say what it does?
            "plan_consistency": meta_action_accuracy(out.meta_actions, out.plan_meta_actions),
            "explanation": rouge_l_f1(out.texts, run.gt.explanations),
        }
    report["timing"] = {
        "predict_s": out.predict_s,
        "samples_per_s": len(ok) / out.predict_s if out.predict_s > 0 else math.inf,
    }
    return report


def compare_report(run: OpenLoopRun, protocol: str | Sequence[str] = "all") -> dict[str, Any]:
    """{"dataset": ..., "protocols": {name: description}, "models": {name: model_report}}.

    Raises:
        NoValidSamplesError: a requested published protocol keeps no sample of the split.
    """
    chosen = resolve_protocols(protocol)
    if not any(m.any() for m in run.gt.mask):
        raise NoValidSamplesError(
            f"split {run.dataset.get('split')!r}: none of its {len(run.gt)} samples has a valid future waypoint"
        )
    for p in chosen:
        if p.sample_set == "stp3" and run.dataset["samples_in_stp3_set"] == 0 and protocol != "all":
            raise NoValidSamplesError(
                f"split {run.dataset.get('split')!r}: no sample has 2 past and {NUM_STEPS} future keyframes in its"
                f" scene, which the {p.name} protocol requires"
            )
    return {
        "dataset": run.dataset,
        "protocols": {p.name: p.describe() for p in [*chosen, BOX_OVERLAP]},
        "models": {name: model_report(run, name, protocol) for name in run.models},
    }


def compare(
    planners: Mapping[str, Planner],
    reader: Any,
    protocol: str = "all",
    batch_size: int = 8,
    max_samples: int | None = None,
    explain: bool = False,
) -> dict[str, Any]:
    """Evaluate several planners on the same samples (each sample read once); see compare_report."""
    resolve_protocols(protocol)
    run = run_openloop(planners, reader, batch_size, max_samples, explain)
    return compare_report(run, protocol)


def evaluate(
    planner: Planner,
    reader: Any,
    protocol: str = "all",
    batch_size: int = 8,
    max_samples: int | None = None,
    explain: bool = False,
    name: str = "model",
) -> dict[str, Any]:
    """Evaluate one planner: {protocol: {l2_m, collision_pct, num_samples, ...}, "failures", "language", ...}.

    Raises:
        NoValidSamplesError: the split is empty, or the requested protocol keeps no sample.
    """
    report = compare({name: planner}, reader, protocol, batch_size, max_samples, explain)
    return {**report["models"][name], "dataset": report["dataset"]}
