"""`drive-vla bench train`: training step time and samples/s (tiny VLA on CPU; Qwen2.5-0.5B shape in bf16 on CUDA, with MFU)."""

from __future__ import annotations

import argparse
import contextlib
import time
from typing import Any

import numpy as np
import torch

from drive_vla.benchmarking import median, percentile

TINY_MODEL = "configs/model/tiny.yaml"
QWEN_MODEL = "configs/model/qwen2.5-0.5b.yaml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--recipe", default="configs/train/embedded_tiny.yaml", help="recipe whose loss weights and optimiser are used"
    )
    parser.add_argument("--steps", type=int, default=8, help="timed optimiser steps per row")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--batch-size", type=int, default=4, help="samples per step (tiny row)")
    parser.add_argument("--gpu-batch-size", type=int, default=8, help="samples per step (CUDA row)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = leave as is)")
    parser.add_argument(
        "--peak-tflops",
        type=float,
        default=None,
        help="peak dense bf16 TFLOP/s of the GPU for MFU (e.g. 989 for H100 SXM); MFU is left out without it",
    )
    parser.add_argument("--no-gpu", action="store_true", help="skip the CUDA row even when CUDA is available")


def synthetic_samples(n: int, image_hw: tuple[int, int], seed: int = 0) -> list:
    """``n`` Samples of constant-speed arcs with random images, QA, explanation and control labels."""
    from drive_vla.geometry import rig_calibration
    from drive_vla.types import (
        CAMERA_NAMES,
        Control,
        EgoState,
        Observation,
        Sample,
        SampleMeta,
        Targets,
        Trajectory,
    )

    rng = np.random.default_rng(seed)
    h, w = image_hw
    intr, extr = rig_calibration(w, h)
    out = []
    for i in range(n):
        speed, yaw_rate = float(rng.uniform(2, 12)), float(rng.uniform(-0.2, 0.2))
        t = 0.5 * np.arange(1, 7)
        yaw = yaw_rate * t
        xy = np.stack([speed * t * np.cos(yaw / 2), speed * t * np.sin(yaw / 2)], axis=1).astype(np.float32)
        obs = Observation(
            images={c: rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for c in CAMERA_NAMES},
            intrinsics=intr,
            extrinsics=extr,
            ego=EgoState(speed_mps=speed, yaw_rate_rps=yaw_rate, source="sim"),
        )
        targets = Targets(
            trajectory=Trajectory(xy=xy, yaw_rad=yaw.astype(np.float32)),
            control=Control(steer=0.1, throttle=0.4),
            explanation="I keep my lane because the road ahead is clear.",
            qa=(("Is there a car ahead?", "No, the lane ahead is free."),),
        )
        out.append(Sample(observation=obs, targets=targets, meta=SampleMeta(token=f"bench{i}")))
    return out


def _time_training(
    model_cfg: Any, recipe: Any, batch_size: int, steps: int, warmup: int, device: str, bf16: bool
) -> dict[str, Any]:
    from drive_vla.data.datamodule import SampleDataset
    from drive_vla.policy import DrivingPolicy
    from drive_vla.training.module import DrivingModule
    from drive_vla.training.optim import build_optimizer
    from drive_vla.types import Batch

    samples = synthetic_samples(batch_size, tuple(model_cfg.vision.image_hw))
    policy = DrivingPolicy.build(model_cfg, fit_texts=SampleDataset(samples).texts())
    net = policy.model.to(device).train()
    module = DrivingModule(net, recipe.loss, recipe.optim)
    optimizer = build_optimizer(net, recipe.optim)
    batch = Batch.from_samples(samples)
    seq = {}
    hook = net.lm.get_decoder().register_forward_pre_hook(
        lambda _m, _a, kw: seq.__setitem__("shape", tuple(kw["inputs_embeds"].shape[:2])), with_kwargs=True
    )
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()

    def step() -> None:
        with autocast:
            loss = module.weighted_loss(net.losses(batch))
        loss.backward()
        if recipe.optim.grad_clip:
            torch.nn.utils.clip_grad_norm_(net.parameters(), recipe.optim.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device == "cuda":
            torch.cuda.synchronize()

    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    hook.remove()
    b, length = seq["shape"]
    params = sum({p.data_ptr(): p.numel() for p in net.parameters()}.values())
    med = median(times)
    return {
        "device": torch.cuda.get_device_name(0) if device == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
        "precision": "bf16-mixed" if bf16 else "32-true",
        "batch": batch_size,
        "image_hw": "x".join(str(v) for v in model_cfg.vision.image_hw),
        "params_m": round(params / 1e6, 2),
        "tokens_per_step": b * length,
        "step_ms_median": round(1000 * med, 1),
        "step_ms_p90": round(1000 * percentile(times, 90), 1),
        "samples_per_s": round(batch_size / med, 2),
        "peak_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if device == "cuda" else None,
        "_flops_per_step": 6.0 * params * b * length,
        "_step_s": med,
    }


def run(args: argparse.Namespace) -> list[dict]:
    from drive_vla.config import from_dict, read_yaml, to_dict
    from drive_vla.model.config import ModelConfig
    from drive_vla.training.config import deep_merge, load_train_config, resolve_path

    if args.threads:
        torch.set_num_threads(args.threads)
    recipe = load_train_config(args.recipe)
    rows = []
    tiny = from_dict(ModelConfig, deep_merge(to_dict(ModelConfig()), read_yaml(resolve_path(TINY_MODEL))))
    row = _time_training(tiny, recipe, args.batch_size, args.steps, args.warmup, "cpu", bf16=False)
    rows.append({"config": f"{TINY_MODEL} (random init)", **row})
    if torch.cuda.is_available() and not args.no_gpu:
        data = deep_merge(read_yaml(resolve_path(QWEN_MODEL)), {"lm": {"random_init": True}})
        qwen = from_dict(ModelConfig, deep_merge(to_dict(ModelConfig()), data))
        row = _time_training(qwen, recipe, args.gpu_batch_size, args.steps, args.warmup, "cuda", bf16=True)
        rows.append({"config": f"{QWEN_MODEL} (random init)", **row})
    for r in rows:
        flops, step_s = r.pop("_flops_per_step"), r.pop("_step_s")
        r["model_tflop_per_step"] = round(flops / 1e12, 3)
        on_gpu = r["precision"] == "bf16-mixed"
        r["mfu_pct"] = (
            round(100 * flops / step_s / (args.peak_tflops * 1e12), 2) if on_gpu and args.peak_tflops else None
        )
    return rows
