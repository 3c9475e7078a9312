"""DAgger rounds in the embedded world: round 0 trains the base recipe, each later round rolls out, aggregates,
fine-tunes and scores; a completed round is marked atomically, so a re-run with the same folder resumes.

Run folder::

    dagger_config.yaml        the resolved recipe (a re-run must match it, except dagger.rounds)
    dagger_metrics.json       per round: beta, samples added and in all, open-loop val L2, closed-loop score
    round_0/data/             the initial embedded dataset (when the recipe makes it)
    round_<r>/data/           round r's on-policy scenes (r >= 1), nuScenes format with expert labels and plans
    round_<r>/train/          the round's training run (checkpoints, logs, policy/)
    round_<r>/round_done.json written last: the round's record; a round folder without it is redone
    policy/                   a copy of the last round's policy, so every recipe's run exports to <out>/policy
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from drive_vla.config import ConfigError, load_config, save_config, to_dict
from drive_vla.sim.config import DatasetConfig
from drive_vla.suites import DriveSuite, load_suite
from drive_vla.training import dagger_steps as steps
from drive_vla.training.config import TrainConfig, resolve_path
from drive_vla.training.dagger_config import DaggerConfig
from drive_vla.training.run import TrainSetupError, train

CONFIG_FILE = "dagger_config.yaml"
METRICS_FILE = "dagger_metrics.json"
DONE_FILE = "round_done.json"
RESUMABLE_KEYS = ("dagger.rounds",)  # may change between runs of the same folder


@dataclass
class DaggerResult:
    """A finished DAgger run: its folder, the final policy and every round's record."""

    run_dir: Path
    policy_dir: Path
    rounds: list[dict[str, Any]] = field(default_factory=list)


def round_dir(run_dir: Path, r: int) -> Path:
    return run_dir / f"round_{r}"


def completed_rounds(run_dir: Path) -> list[dict[str, Any]]:
    """Records of rounds 0, 1, ... up to the first round without its completion marker."""
    out = []
    while (round_dir(run_dir, len(out)) / DONE_FILE).is_file():
        out.append(json.loads((round_dir(run_dir, len(out)) / DONE_FILE).read_text()))
    return out


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    tmp.replace(path)


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        out.update(_flat(v, key + ".") if isinstance(v, dict) else {key: v})
    return out


def _check_same_recipe(cfg: TrainConfig, run_dir: Path) -> None:
    saved_path = run_dir / CONFIG_FILE
    if not saved_path.is_file():
        if any(run_dir.glob("round_*")):
            raise TrainSetupError(f"out: {run_dir} holds rounds but no {CONFIG_FILE}, expected a DAgger run folder")
        save_config(cfg, saved_path)
        return
    try:
        saved = load_config(TrainConfig, saved_path)
    except ConfigError as exc:
        raise TrainSetupError(f"out: {saved_path} is not a readable recipe ({exc})") from exc
    old, new = _flat(to_dict(saved)), _flat(to_dict(cfg))
    diff = sorted(k for k in old.keys() | new.keys() if k not in RESUMABLE_KEYS and old.get(k) != new.get(k))
    if diff:
        shown = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in diff[:5])
        raise TrainSetupError(
            f"out: {run_dir} holds a DAgger run of another recipe ({shown}); expected the same recipe "
            "(only dagger.rounds may change) or a new --out"
        )
    save_config(cfg, saved_path)


def _setup(cfg: TrainConfig) -> tuple[DriveSuite, DatasetConfig]:
    d = cfg.dagger
    if d.rounds < 1:
        raise TrainSetupError(f"dagger.rounds: got {d.rounds}, expected >= 1 for a DAgger run")
    if cfg.model.kind != "vla":
        raise TrainSetupError(f"model.kind: got {cfg.model.kind!r}, expected 'vla' (DAgger rolls out a driving policy)")
    try:
        suite = load_suite(d.suite)
        dataset_cfg = load_config(DatasetConfig, resolve_path(d.dataset_config))
    except ValueError as exc:
        raise TrainSetupError(str(exc)) from exc
    if suite.env != "embedded":
        raise TrainSetupError(f"dagger.suite: got {suite.name!r} for env {suite.env!r}, expected an embedded suite")
    if not d.initial_scenes and not (resolve_path(cfg.data.dataroot) / cfg.data.version).is_dir():
        raise TrainSetupError(
            f"data.dataroot/version: {cfg.data.dataroot}/{cfg.data.version} does not exist, expected a dataset "
            "or dagger.initial_scenes > 0 (the recipe then makes one)"
        )
    return suite, dataset_cfg


def _count_train_samples(root: str, cfg: TrainConfig) -> int:
    from drive_vla.data.reader import NuScenesReader

    return len(NuScenesReader(root, cfg.data.version, split=cfg.data.train_split))


def run_dagger(cfg: TrainConfig, out_dir: str | Path) -> DaggerResult:
    """Run (or resume) the recipe's DAgger rounds in ``out_dir``; see the module docstring for the layout."""
    d = cfg.dagger
    suite, dataset_cfg = _setup(cfg)
    run_dir = Path(out_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    _check_same_recipe(cfg, run_dir)
    records = completed_rounds(run_dir)[: d.rounds + 1]
    if records:
        print(f"dagger: resuming {run_dir} after round {len(records) - 1}", flush=True)
    initial_root = str(round_dir(run_dir, 0) / "data") if d.initial_scenes else str(resolve_path(cfg.data.dataroot))
    for r in range(len(records), d.rounds + 1):
        rd = round_dir(run_dir, r)
        if rd.exists():
            shutil.rmtree(rd)  # an interrupted round starts over; completed ones are never touched
        rd.mkdir(parents=True)
        t0 = time.perf_counter()
        if r == 0:
            if d.initial_scenes:
                steps.make_initial_dataset(cfg, dataset_cfg, Path(initial_root))
            stage = replace_dagger(cfg, initial_root)
            record: dict[str, Any] = {"round": 0, "beta": None, "samples_added": 0}
            record["initial_train_samples"] = _count_train_samples(initial_root, cfg)
            record["total_samples"] = record["initial_train_samples"]
        else:
            prev_policy = round_dir(run_dir, r - 1) / "train" / "policy"
            record = {"round": r, **steps.collect_round(cfg, dataset_cfg, r, prev_policy, rd / "data")}
            record["total_samples"] = records[-1]["total_samples"] + record["samples_added"]
            roots = [round_dir(run_dir, k) / "data" for k in range(1, r + 1)]
            stage = steps.round_config(cfg, initial_root, prev_policy, roots)
        t1 = time.perf_counter()
        result = train(stage, rd / "train")
        t2 = time.perf_counter()
        record["val_l2_avg_m"] = result.metrics.get("val/l2_avg_m")
        record.update(
            steps.score_on_suite(
                result.policy_dir, suite, d.controller, f"round {r}: suite {suite.name}", d.policy_threads
            )
        )
        record["seconds"] = {
            "data": round(t1 - t0, 1),
            "train": round(t2 - t1, 1),
            "drive": round(time.perf_counter() - t2, 1),
        }
        _write_json(rd / DONE_FILE, record)
        records.append(record)
        _write_json(run_dir / METRICS_FILE, {"suite": suite.name, "rounds": records})
        print(format_round(record), flush=True)
    return DaggerResult(run_dir, _publish(round_dir(run_dir, d.rounds) / "train" / "policy", run_dir), records)


def _publish(policy_dir: Path, run_dir: Path) -> Path:
    """Copy the final round's policy to ``<run_dir>/policy`` (written aside, then swapped in)."""
    final, tmp = run_dir / "policy", run_dir / "policy.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(policy_dir, tmp)
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    return final


def replace_dagger(cfg: TrainConfig, dataroot: str | None = None) -> TrainConfig:
    """``cfg`` as one plain training stage (no DAgger section), optionally on another dataroot."""
    data = cfg.data if dataroot is None else replace(cfg.data, dataroot=dataroot)
    return replace(cfg, data=data, dagger=DaggerConfig())


def format_round(record: dict[str, Any]) -> str:
    """One line per round for the console."""
    beta = "-" if record.get("beta") is None else f"{record['beta']:.2f}"
    l2 = record.get("val_l2_avg_m")
    return (
        f"round {record['round']}: beta {beta}, +{record['samples_added']} samples ({record['total_samples']} in all), "
        f"val L2 {'-' if l2 is None else f'{l2:.3f}'} m, suite {record['suite']}: DS {record['driving_score']:.1f} "
        f"RC {record['route_completion']:.1f} collisions {record['collisions']}"
    )
