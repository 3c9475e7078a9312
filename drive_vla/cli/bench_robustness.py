"""`drive-vla bench robustness`: the fault campaigns in one table.

- sensor faults through the leaderboard agent (``carla_agents.fuzz``): cases, crashes, brakes, recovery;
- observation faults through the shared drive loop with the embedded backend (``drive_vla.sim.loop_fuzz``);
- generated HTTP requests from the service's own OpenAPI document (``drive_vla.serve.api_fuzz``): requests,
  5xx, 4xx bodies that do not name a field, /health afterwards;
- `drive-vla train` killed with SIGKILL at random steps and resumed (``drive_vla.training.kill_campaign``):
  steps lost, half-written checkpoints, weights against an uninterrupted run;
- a bounded loopback load test of POST /plan with locust (``drive_vla.serve.load``): throughput, p50/p99,
  failures, for a policy directory or, by default, the tiny VLA with random weights (the same arithmetic).

Both draw their cases with hypothesis (a test extra: ``pip install -e ".[dev]"``).
"""

from __future__ import annotations

import argparse
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cases", type=int, default=1000, help="sensor-fault cases (valid, faulty, valid frames)")
    parser.add_argument(
        "--loop-cases", type=int, default=1000, help="faulty observations through the drive loop (embedded world)"
    )
    parser.add_argument("--requests-per-operation", type=int, default=500, help="generated requests per HTTP operation")
    parser.add_argument("--seed", type=int, default=0, help="sensor campaign seed (the same seed, the same cases)")
    parser.add_argument("--kills", type=int, default=3, help="SIGKILL-and-resume training runs (0: skip)")
    parser.add_argument("--load-users", type=int, default=8, help="concurrent locust clients on /plan")
    parser.add_argument("--load-seconds", type=int, default=30, help="length of the load test")
    parser.add_argument("--load-policy", default="", help="policy directory to serve (default: tiny, random weights)")
    parser.add_argument("--load-config", default="configs/model/tiny.yaml", help="model config without --load-policy")


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    from carla_agents.fuzz import BRAKE_FAULTS, run_campaign
    from drive_vla.serve.api_fuzz import run_api_campaign
    from drive_vla.sim.loop_fuzz import run_loop_campaign

    checks = (("--cases", args.cases), ("--loop-cases", args.loop_cases))
    for flag, value in (*checks, ("--requests-per-operation", args.requests_per_operation)):
        if value < 1:
            raise ValueError(f"{flag}: got {value}, expected >= 1")
    sensor = run_campaign(args.cases, args.seed)
    loop = run_loop_campaign(args.loop_cases, args.seed)
    http = run_api_campaign(args.requests_per_operation)
    load, served = _load(args)
    killed = _kills(args.kills, args.seed)
    command = (
        f"drive-vla bench robustness --cases {args.cases} --loop-cases {args.loop_cases} --requests-per-operation "
        f"{args.requests_per_operation} --seed {args.seed} --load-users {args.load_users} "
        f"--load-seconds {args.load_seconds} --kills {args.kills}"
        + (f" --load-policy {args.load_policy}" if args.load_policy else "")
    )
    rows: list[dict[str, Any]] = [
        {
            "campaign": "sensor faults, leaderboard agent",
            "cases": sensor.cases,
            "crashes": sensor.crashes,
            "failures": sensor.brake_failures + sensor.unnamed_faults + sensor.drive_failures,
            "recovery_frames_max": sensor.recovery_frames_max,
            "kinds": len(sensor.per_fault),
            "seconds": round(sensor.seconds, 2),
            "command": command,
        },
        {
            "campaign": "observation faults, drive loop + embedded world",
            "cases": loop.cases,
            "crashes": loop.crashes,
            "failures": loop.brake_failures + loop.unnamed_faults + loop.refusal_failures + loop.recovery_failures,
            "recovery_frames_max": loop.recovery_steps_max,
            "kinds": len(loop.per_fault),
            "seconds": round(loop.seconds, 2),
            "command": command,
        },
        {
            "campaign": "HTTP requests from /openapi.json (schemathesis)",
            "cases": http.requests,
            "crashes": http.server_errors,
            "failures": http.unnamed_4xx + (0 if http.health_after else 1),
            "kinds": len(http.per_operation),
            "seconds": round(http.seconds, 2),
            "status_counts": dict(sorted(http.status_counts.items())),
            "command": command,
        },
    ]
    if killed is not None:
        bad = int(not killed["final_step_ok"]) + int(not killed["max_weight_diff"] < 1e-5)
        rows.append(
            {
                "campaign": "training killed with SIGKILL at random steps, then --resume",
                "cases": killed["kills"],
                "crashes": killed["kills"] - killed["resumed"],
                "failures": bad,
                "data_lost": f"<= {killed['steps_lost_at_most']} steps (checkpoint every {killed['checkpoint_every_steps']})",
                "max_weight_diff": f"{killed['max_weight_diff']:.1e}",
                "half_written_left": killed["half_written_left"],
                "seconds": round(killed["seconds"], 1),
                "command": command,
            }
        )
    rows.append(
        {
            "campaign": f"load: POST /plan, {load['users']} clients, {load['seconds']} s, {served}",
            "cases": load["requests"],
            "crashes": 0,
            "failures": load["failures"],
            "seconds": load["seconds"],
            "throughput_rps": load["throughput_rps"],
            "p50_ms": load["p50_ms"],
            "p99_ms": load["p99_ms"],
            "busy_503": load["busy_503"],
            "command": command,
        }
    )
    for fault, n in sorted(sensor.per_fault.items()):
        kind = "brake" if fault in BRAKE_FAULTS else "drive on"
        rows.append(
            {"campaign": f"  {fault} ({kind})", "cases": n, "recovery_frames_max": sensor.slow_recoveries.get(fault, 1)}
        )
    rows += [{"campaign": f"  failure: {line}"} for line in (sensor.examples + loop.examples + http.examples)[:20]]
    return rows


def _load(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    import numpy as np
    import torch

    from drive_vla.config import load_config
    from drive_vla.model.bench import synthetic_observation
    from drive_vla.model.config import ModelConfig
    from drive_vla.policy import DrivingPolicy
    from drive_vla.serve.load import run_load_test

    torch.set_num_threads(1)  # the service computes one plan at a time; the clients share the machine
    if args.load_policy:
        policy, served = DrivingPolicy.from_pretrained(args.load_policy), args.load_policy
    else:
        cfg = load_config(ModelConfig, args.load_config)
        torch.manual_seed(0)
        policy, served = DrivingPolicy.build(cfg, fit_texts=[]), f"{args.load_config} (random weights)"
    hw = tuple(int(v) for v in policy.config.vision.image_hw)
    obs = synthetic_observation(np.random.default_rng(0), hw)
    return run_load_test(policy, obs, args.load_users, args.load_seconds), served


def _kills(kills: int, seed: int) -> dict[str, Any] | None:
    import tempfile

    from drive_vla.training.kill_campaign import run_kill_campaign

    if kills <= 0:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        return run_kill_campaign(tmp, kills, seed)
