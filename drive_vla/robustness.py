"""`drive-vla bench robustness`: the fault campaigns in one table.

- sensor faults through the leaderboard agent (``carla_agents.fuzz``): cases, crashes, brakes, recovery;
- generated HTTP requests from the service's own OpenAPI document (``drive_vla.serve.api_fuzz``): requests,
  5xx, 4xx bodies that do not name a field, /health afterwards.

Both draw their cases with hypothesis (a test extra: ``pip install -e ".[dev]"``).
"""

from __future__ import annotations

import argparse
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cases", type=int, default=1000, help="sensor-fault cases (valid, faulty, valid frames)")
    parser.add_argument("--requests-per-operation", type=int, default=500, help="generated requests per HTTP operation")
    parser.add_argument("--seed", type=int, default=0, help="sensor campaign seed (the same seed, the same cases)")


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    from carla_agents.fuzz import BRAKE_FAULTS, run_campaign
    from drive_vla.serve.api_fuzz import run_api_campaign

    for flag, value in (("--cases", args.cases), ("--requests-per-operation", args.requests_per_operation)):
        if value < 1:
            raise ValueError(f"{flag}: got {value}, expected >= 1")
    sensor = run_campaign(args.cases, args.seed)
    http = run_api_campaign(args.requests_per_operation)
    command = (
        f"drive-vla bench robustness --cases {args.cases} --requests-per-operation "
        f"{args.requests_per_operation} --seed {args.seed}"
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
            "campaign": "HTTP requests from /openapi.json (schemathesis)",
            "cases": http.requests,
            "crashes": http.server_errors,
            "failures": http.unnamed_4xx + (0 if http.health_after else 1),
            "kinds": len(http.per_operation),
            "seconds": round(http.seconds, 2),
            "status_counts": http.as_row()["status_counts"],
            "command": command,
        },
    ]
    for fault, n in sorted(sensor.per_fault.items()):
        kind = "brake" if fault in BRAKE_FAULTS else "drive on"
        rows.append(
            {"campaign": f"  {fault} ({kind})", "cases": n, "recovery_frames_max": sensor.slow_recoveries.get(fault, 1)}
        )
    rows += [{"campaign": f"  failure: {line}"} for line in (sensor.examples + http.examples)[:20]]
    return rows
