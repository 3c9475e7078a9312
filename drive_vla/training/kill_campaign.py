"""Killed training, measured: `drive-vla train` in a subprocess is killed with SIGKILL at random steps and
resumed with ``--resume``; each resumed run is compared with one uninterrupted run of the same recipe.

Reported per campaign: kills, the step of the last complete checkpoint at each kill (the process had gone
at most one checkpoint interval past it: that work is lost and trained again), half-written checkpoints left beside the
last one (removed by the resume, never loaded), and the largest weight difference between a resumed run's
exported policy and the uninterrupted one. The run is a test-size VLA on a two-scene embedded dataset, so
a campaign takes about a minute per kill on 2 CPU cores.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

SMALL_MODEL = {
    "vision": {"image_hw": [36, 64], "dim": 32, "num_queries": 4, "resampler_heads": 2},
    "lm": {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "num_kv_heads": 1, "intermediate_size": 64},
    "planner_head": {"hidden": 32},
    "action_tokenizer_kwargs": {"bins_x": 64, "bins_y": 64},
    "max_explanation_tokens": 8,
}
EVERY = 2  # checkpoint interval, steps
STEPS = 14


def _step(ckpt: Path) -> int:
    import torch

    try:
        return int(torch.load(ckpt, map_location="cpu", weights_only=True)["global_step"])
    except (FileNotFoundError, RuntimeError, EOFError, KeyError):
        return -1


def _weights(policy_dir: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(policy_dir / "model.safetensors")


def run_kill_campaign(workdir: str | Path, kills: int = 3, seed: int = 0, repo: Path | None = None) -> dict[str, Any]:
    """``kills`` SIGKILL-and-resume runs against one uninterrupted run (see the module docstring)."""
    if kills < 1:
        raise ValueError(f"kills: got {kills}, expected >= 1")
    repo = repo or Path(__file__).resolve().parents[2]
    work = Path(workdir)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    py = [sys.executable, "-m", "drive_vla.cli.main"]
    data = work / "data"
    if not (data / "v1.0-embedded").is_dir():
        make = py + ["data", "make-embedded", "--out", str(data), "--scenes", "3", "--keyframes", "8"]
        subprocess.run(make + ["--image-size", "64x36", "--workers", "1"], env=env, check=True, capture_output=True)
    sets = [f"data.dataroot={data}", "data.image_hw=[36, 64]", "data.batch_size=4", "data.num_workers=0"]
    sets += [f"model.path={repo / 'configs/model/tiny.yaml'}", f"model.overrides={SMALL_MODEL}"]
    sets += [f"trainer.max_steps={STEPS}", "trainer.max_epochs=-1", "trainer.val_every_n_steps=0"]
    sets += [f"checkpoint.every_n_steps={EVERY}", "checkpoint.export=last", "checkpoint.monitor=''"]
    sets += ["logging.csv=false", "logging.tensorboard=false", "logging.plot=false", "logging.progress_bar=false"]

    def train(out: Path, *extra: str) -> list[str]:
        cmd = py + ["train", "--config", str(repo / "configs/train/embedded_tiny.yaml"), "--out", str(out)]
        return cmd + [a for s in sets for a in ("--set", s)] + list(extra)

    t0 = time.perf_counter()
    full = work / "uninterrupted"
    if not (full / "policy" / "model.safetensors").is_file():
        subprocess.run(train(full), env=env, check=True, capture_output=True, cwd=repo)
    reference = _weights(full / "policy")
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(kills):
        out = work / f"killed{k}"
        ckpt = out / "checkpoints" / "last.ckpt"
        kill_at = int(rng.integers(EVERY, STEPS - EVERY + 1))
        proc = subprocess.Popen(train(out), env=env, cwd=repo, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 600
        while proc.poll() is None and _step(ckpt) < kill_at and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(60)
        saved = _step(ckpt)
        stale = len(list(ckpt.parent.glob("*.tmp")))
        resumed = subprocess.run(train(out, "--resume"), env=env, cwd=repo, capture_output=True, text=True)
        if resumed.returncode != 0:
            rows.append({"kill": k, "kill_at": kill_at, "checkpoint": saved, "resumed": False})
            continue
        weights = _weights(out / "policy")
        diff = max(float((weights[n].float() - reference[n].float()).abs().max()) for n in reference)
        rows.append(
            {
                "kill": k,
                "kill_at": kill_at,
                "checkpoint": saved,
                "half_written_left": stale,
                "resumed": True,
                "final_step": _step(ckpt),
                "max_weight_diff": diff,
            }
        )
    resumed_rows = [r for r in rows if r["resumed"]]
    return {
        "kills": kills,
        "resumed": len(resumed_rows),
        "checkpoint_every_steps": EVERY,
        # the kill came after checkpoint `checkpoint` was complete and before the next one was: the process had
        # gone at most EVERY - 1 steps past it, which the resumed run trains again
        "steps_lost_at_most": EVERY - 1,
        "checkpoints_at_kill": [r["checkpoint"] for r in rows],
        "half_written_left": sum(r.get("half_written_left", 0) for r in rows),
        "final_step_ok": all(r.get("final_step") == STEPS for r in resumed_rows),
        "max_weight_diff": max((r["max_weight_diff"] for r in resumed_rows), default=float("nan")),
        "runs": rows,
        "seconds": time.perf_counter() - t0,
    }
