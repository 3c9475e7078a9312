"""`drive-vla bench policy`: parameters per part, tokens per plan, predict latency (p50/p90) and peak memory.

With ``--input-size WxH`` other than the model's own size, every mode is timed on both sizes, calls
interleaved so that load from other processes falls on both alike; the larger input's row gives the ratio
of its p50 to the model-size p50 (the cost of resizing inside ``predict``).
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import cv2
import numpy as np
import torch

from drive_vla.benchmarking import percentile
from drive_vla.model.quantize import check_quantize, quantize_model
from drive_vla.types import CAMERA_NAMES, Command, EgoState, Observation


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default="configs/model/tiny.yaml", help="model config YAML")
    parser.add_argument(
        "--policy",
        default=None,
        metavar="DIR",
        help="time a saved (trained) DrivingPolicy instead of building --config with random weights",
    )
    parser.add_argument(
        "--dataroot",
        default=None,
        help="feed the first --samples keyframes of this nuScenes-format dataset's --split instead of random "
        "images (with a trained --policy, tokens per plan are then what it generates on real frames)",
    )
    parser.add_argument("--version", default="v1.0-embedded", help="dataset version folder (with --dataroot)")
    parser.add_argument("--split", default="val", help="split name (with --dataroot)")
    parser.add_argument("--samples", type=int, default=20, help="keyframes cycled through (with --dataroot)")
    parser.add_argument("--override", action="append", default=[], help="config override KEY=VALUE (repeatable)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--quantize", default="none", help="'none' or 'int8' (dynamic INT8 linear layers, CPU)")
    parser.add_argument(
        "--compile",
        choices=COMPILE_TARGETS,
        default="none",
        help="torch.compile the vision backbone, the LM decoder or both before timing (measured, never required)",
    )
    parser.add_argument("--random-init", action="store_true", help="build the LM's real shape with random weights")
    parser.add_argument("--modes", default="tokens,head", help="comma-separated output modes to time")
    parser.add_argument("--explain", action="store_true", help="also time predict with an explanation")
    parser.add_argument(
        "--input-size",
        type=parse_input_size,
        default=None,
        metavar="WxH",
        help="camera image size fed to predict, e.g. 1600x900 (default: the model's vision.image_hw); "
        "timed beside input at the model's size",
    )
    parser.add_argument("--repeats", type=int, default=20, help="timed predict calls per mode")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls before timing")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    parser.add_argument(
        "--sweep",
        action="store_true",
        help="the cost curve instead of one config: cameras, visual tokens, image size and LM size, both modes, "
        "--sweep-threads; also writes a PNG beside --json (drive_vla/model/cost_curve.py)",
    )
    parser.add_argument("--sweep-lms", default="tiny,smollm2-135m,qwen2.5-0.5b", help="LMs of the sweep")
    parser.add_argument("--sweep-threads", default="1,2", help="thread counts of the sweep, comma-separated")


COMPILE_TARGETS = ("none", "vision", "lm", "all")


def compile_parts(policy, target: str) -> None:
    """torch.compile the vision backbone ("vision"), the LM decoder ("lm", dynamic shapes: the KV cache grows
    while decoding) or both ("all") in place; the first calls afterwards pay the compilation."""
    if target not in COMPILE_TARGETS:
        raise ValueError(f"--compile: got {target!r}, expected one of {list(COMPILE_TARGETS)}")
    model = policy.model
    if target in ("vision", "all"):
        model.vision.backbone = torch.compile(model.vision.backbone)
    if target in ("lm", "all"):  # in place: the generation code reaches the decoder through get_decoder()
        decoder = model.lm.get_decoder()
        decoder.forward = torch.compile(decoder.forward, dynamic=True)


def parse_input_size(text: str) -> tuple[int, int]:
    """'WxH' (e.g. '1600x900') -> (width, height); argparse.ArgumentTypeError naming the flag otherwise."""
    parts = str(text).strip().lower().split("x")
    try:
        w, h = (int(v) for v in parts)
    except ValueError:
        w = h = 0
    if len(parts) != 2 or w < 1 or h < 1:
        raise argparse.ArgumentTypeError(
            f"got {text!r}, expected WIDTHxHEIGHT in pixels, two positive integers such as 1600x900"
        )
    return w, h


def synthetic_observation(rng: np.random.Generator, hw: tuple[int, int]) -> Observation:
    """Random six-camera uint8 images and a plausible ego state (shapes are all that matter for timing)."""
    h, w = hw
    return Observation(
        images={c: rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for c in CAMERA_NAMES},
        intrinsics={c: np.array([[w / 2, 0, w / 2], [0, w / 2, h / 2], [0, 0, 1]], np.float32) for c in CAMERA_NAMES},
        extrinsics={c: np.eye(4, dtype=np.float32) for c in CAMERA_NAMES},
        ego=EgoState(speed_mps=float(rng.uniform(0, 12)), accel_mps2=np.zeros(2, np.float32)),
        history=np.stack([np.linspace(-8, -2, 4), np.zeros(4), np.zeros(4)], 1).astype(np.float32),
        command=Command.STRAIGHT,
    )


def _label(args: argparse.Namespace) -> str:
    """What was timed: the saved policy's folder, or the config file's name."""
    if getattr(args, "policy", None):
        return f"policy:{str(args.policy).rstrip('/')}"
    return args.config.rsplit("/", 1)[-1]


def _observations(args: argparse.Namespace, hw: tuple[int, int]) -> list[Observation]:
    """The observations one mode is timed on: one random frame, or the first ``--samples`` keyframes of
    ``--dataroot``'s ``--split`` at size ``hw`` (cycled through by the timed calls)."""
    if not getattr(args, "dataroot", None):
        return [synthetic_observation(np.random.default_rng(0), hw)]
    from drive_vla.data.reader import NuScenesReader

    if args.samples < 1:
        raise ValueError(f"--samples: got {args.samples}, expected at least 1 keyframe")
    reader = NuScenesReader(args.dataroot, args.version, split=args.split, image_hw=hw)
    if len(reader) == 0:
        raise ValueError(f"--split: {args.split!r} of {args.dataroot}/{args.version} holds no keyframes")
    return [reader[i].observation for i in range(min(args.samples, len(reader)))]


def _memory_mb(device: torch.device) -> tuple[str, float]:
    if device.type == "cuda":
        return "cuda_max_allocated", torch.cuda.max_memory_allocated(device) / 2**20
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):  # peak resident set size of this process
                return "peak_rss", int(line.split()[1]) / 1024
    import resource

    return "peak_rss", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def check_device(device: str, dtype: str) -> None:
    """Raise ValueError naming --device / --dtype when the device does not exist here or lacks bf16 (before
    any model is built)."""
    available = ["cpu"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ValueError(f"--device: got {device!r}, expected one of {available}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device: got {device!r}, but CUDA is not available here; expected one of {available}")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"--device: got {device!r}, expected one of {available}")
        if dtype == "bf16" and not torch.cuda.is_bf16_supported():
            raise ValueError(f"--dtype: got 'bf16', but {device} does not support bfloat16; expected fp32")
    elif dev.type != "cpu":
        raise ValueError(f"--device: got {device!r}, expected one of {available}")


def run(args: argparse.Namespace) -> list[dict]:
    from drive_vla.config import load_config
    from drive_vla.model.config import ModelConfig
    from drive_vla.policy import DrivingPolicy

    if getattr(args, "sweep", False):
        from drive_vla.model.cost_curve import run as run_sweep

        if getattr(args, "policy", None):
            raise ValueError("--policy: not with --sweep, which builds each point's config with random weights")

        return run_sweep(args)
    check_device(args.device, args.dtype)
    check_quantize(args.quantize, args.device, "--quantize")
    if args.quantize != "none" and args.dtype != "fp32":
        raise ValueError(f"--quantize: got {args.quantize!r} with --dtype {args.dtype}, expected --dtype fp32")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
        cv2.setNumThreads(args.threads)  # the input resize runs in OpenCV: hold it to the same thread count
    overrides = list(args.override)
    if args.random_init:
        overrides.append("lm.random_init=true")
    overrides.append(f"dtype={'bfloat16' if args.dtype == 'bf16' else 'float32'}")
    if getattr(args, "compile", "none") in ("lm", "all"):
        overrides.append("lean_decoding=false")  # the compiled forward is Hugging Face's: the lean one bypasses it
    device = torch.device(args.device)
    t0 = time.perf_counter()
    if getattr(args, "policy", None):
        bad = [f for f, on in (("--override", args.override), ("--random-init", args.random_init)) if on]
        if args.dtype != "fp32":
            bad.append("--dtype")
        if bad:
            raise ValueError(f"{bad[0]}: not with --policy, which times the saved policy as it was trained")
        policy = DrivingPolicy.from_pretrained(args.policy, device=device, quantize=args.quantize)
        cfg = policy.config
    else:
        cfg = load_config(ModelConfig, args.config, overrides)
        # No data here: a "corpus" text tokenizer is fitted to the fixed prompt and label texts only.
        policy = DrivingPolicy.build(cfg, fit_texts=[]).to(device)
        quantize_model(policy.model, args.quantize)
    compile_target = getattr(args, "compile", "none")
    compile_parts(policy, compile_target)
    build_s = time.perf_counter() - t0
    counts = policy.model.num_parameters()
    model_hw = tuple(int(v) for v in cfg.vision.image_hw)
    hw = model_hw if args.input_size is None else (args.input_size[1], args.input_size[0])
    inputs = {size: _observations(args, size) for size in dict.fromkeys([model_hw, hw])}
    runs = [(m.strip(), False) for m in args.modes.split(",") if m.strip()]
    if args.explain:
        runs.append(("tokens", True))
    rows = []
    for mode, explain in runs:
        policy.model.cfg = dataclasses.replace(cfg, output_mode=mode)
        policy.config = policy.model.cfg

        def call(obs: Observation, explain: bool = explain) -> None:
            if explain:
                policy.explain(obs)
            else:
                policy.predict(obs)
            if device.type == "cuda":
                torch.cuda.synchronize(device)

        t_warm = time.perf_counter()
        for k in range(max(args.warmup, 1 if compile_target != "none" else 0)):
            for obs in inputs.values():
                call(obs[k % len(obs)])
        warmup_s = time.perf_counter() - t_warm
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        times: dict[tuple[int, int], list[float]] = {size: [] for size in inputs}
        generated: dict[tuple[int, int], list[int]] = {size: [] for size in inputs}
        for k in range(args.repeats):
            for size, obs in inputs.items():  # interleaved: a busy moment of the machine hits both sizes
                t = time.perf_counter()
                call(obs[k % len(obs)])
                times[size].append(1e3 * (time.perf_counter() - t))
                generated[size].append(int(policy.model.last_decode_stats.get("generated_tokens", [0])[0]))
        model_p50 = percentile(times[model_hw], 50)
        for size, obs in inputs.items():
            stages = {}
            if not explain:
                plan = policy.predict(obs[0])
                stages = {f"{k}_ms": round(v, 2) for k, v in plan.timings_ms.items() if k != "total"}
            stats = policy.model.last_decode_stats
            mem_kind, mem_mb = _memory_mb(device)
            p50 = percentile(times[size], 50)
            rows.append(
                {
                    "config": _label(args),
                    "mode": mode + ("+explain" if explain else ""),
                    "input_size": f"{size[1]}x{size[0]}",
                    "device": str(device),
                    "dtype": args.dtype,
                    "quantize": args.quantize,
                    "compile": compile_target,
                    "params_total_M": counts["total"] / 1e6,
                    "params_vision_M": counts["vision"] / 1e6,
                    "params_lm_M": counts["lm"] / 1e6,
                    "params_state_k": counts["state_encoder"] / 1e3,
                    "params_head_k": counts["planner_head"] / 1e3,
                    "visual_tokens": policy.model.vision.num_tokens,
                    "prompt_tokens": stats.get("prompt_tokens", [0])[0],
                    "generated_tokens": float(np.mean(generated[size])),
                    "generated_tokens_max": max(generated[size]),
                    "lm_forward_passes": stats.get("forward_passes", 0),
                    "p50_ms": p50,
                    "p90_ms": percentile(times[size], 90),
                    "hz_p50": 1e3 / p50,
                    "p50_vs_model_size": p50 / model_p50,
                    **stages,
                    f"{mem_kind}_mb": mem_mb,
                    "threads": torch.get_num_threads(),
                    "model_image_size": f"{model_hw[1]}x{model_hw[0]}",
                    "build_s": build_s,
                    "warmup_s": warmup_s,
                }
            )
    return rows
