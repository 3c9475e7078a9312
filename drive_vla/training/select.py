"""Choose the exported checkpoint of a run by driving (``checkpoint.export: closed_loop``).

Validation L2 picks a run's epoch poorly for closed-loop driving: within one run of the tiny recipe the
kept checkpoints differ by up to 29 points of driving score, as much as training seeds do
(BENCHMARKS.md, round 8). Here every kept step checkpoint from ``select_from_step`` on is exported to
``<run>/select/<name>/policy``, driven over a training-range suite (``select``: never ``dev``, which judges
the result, and never a held-out suite), and the one with the highest driving score becomes ``<run>/policy``.
Ties go to the later checkpoint.

Measured (BENCHMARKS.md, round 9): on 12 routes one checkpoint's score carries a 95 % interval of about
±18 points, as wide as the differences between checkpoints, so the choice is close to a lottery. Over three
training seeds on the held-out benchmark it scored 5.7 [1.0, 10.6] points below the validation-L2 export;
the recipes keep ``export: best``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from drive_vla.training.checkpoint import load_model_state
from drive_vla.training.config import CheckpointConfig

STEP_CKPT = re.compile(r"step-(\d+)\.ckpt$")


def candidates(ckpt_dir: Path, from_step: int) -> list[tuple[int, Path]]:
    """(step, path) of the kept step checkpoints at or after ``from_step``, oldest first."""
    found = []
    for p in Path(ckpt_dir).glob("step-*.ckpt"):
        m = STEP_CKPT.search(p.name)
        if m and int(m.group(1)) >= from_step:
            found.append((int(m.group(1)), p))
    return sorted(found)


def load_checkpoint(net: nn.Module, path: Path) -> None:
    """The network weights of the Lightning checkpoint at ``path`` into ``net``."""
    load_model_state(net, torch.load(path, map_location="cpu", weights_only=True)["state_dict"])


def drive_score(policy_dir: Path, suite: str, max_routes: int, out: Path) -> float:
    """Mean driving score of the policy at ``policy_dir`` over ``suite`` (seed 0, one thread: the scores of
    `drive-vla drive --seed 0 --threads 1`); the run's scores go to ``out/drive_score.json``."""
    from drive_vla.suite_driving import drive_policy_on_suite
    from drive_vla.suites import load_suite

    result = drive_policy_on_suite(policy_dir, load_suite(suite), seed=0, threads=1, max_routes=max_routes or None)
    out.mkdir(parents=True, exist_ok=True)
    (out / "drive_score.json").write_text(json.dumps(result, indent=2) + "\n")
    return float(result["driving_score"])


def select_by_driving(
    net: nn.Module, policy: Any, ckpt_dir: Path, run_dir: Path, cfg: CheckpointConfig
) -> dict[str, Any]:
    """Drive every candidate checkpoint and leave ``net`` holding the best one's weights.

    Returns ``{"suite", "max_routes", "scores": {name: driving score}, "chosen": name}`` for the run's summary.
    """
    found = candidates(ckpt_dir, cfg.select_from_step)
    if not found:
        raise ValueError(
            f"checkpoint.select_from_step: got {cfg.select_from_step}, but {ckpt_dir} holds no step-*.ckpt "
            "at or after it (checkpoint.keep_steps must be on and every_n_steps reached)"
        )
    paths = {f"step-{step:06d}": path for step, path in found}  # oldest first
    scores: dict[str, float] = {}
    for name, path in paths.items():
        load_checkpoint(net, path)
        policy.save_pretrained(run_dir / "select" / name / "policy")
        scores[name] = drive_score(
            run_dir / "select" / name / "policy", cfg.select_suite, cfg.select_max_routes, run_dir / "select" / name
        )
        print(f"checkpoint {name}: driving score {scores[name]:.1f} on suite {cfg.select_suite!r}", flush=True)
    chosen = max(reversed(scores), key=scores.__getitem__)  # newest first, so a tie goes to the later checkpoint
    load_checkpoint(net, paths[chosen])
    return {"suite": cfg.select_suite, "max_routes": cfg.select_max_routes, "scores": scores, "chosen": chosen}
