"""A bounded loopback load test of POST /plan with locust (headless, in a subprocess; it stops by itself).

The service runs in this process (``BackgroundServer``); locust runs ``users`` clients without think time
for ``seconds`` against it, then its CSV summary gives throughput, p50/p99 latency and failures (any answer
that is not 2xx, 503 included, counts as a failure and is reported as such).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from drive_vla.serve.app import create_app
from drive_vla.serve.payload import request_from_observation
from drive_vla.serve.server import BackgroundServer
from drive_vla.types import Observation

LOCUSTFILE = Path(__file__).with_name("locustfile.py")


def run_load_test(policy: Any, observation: Observation, users: int = 8, seconds: int = 30) -> dict[str, Any]:
    """Throughput, latency percentiles (ms) and failures of ``users`` clients on /plan for ``seconds``."""
    if users < 1 or seconds < 1:
        raise ValueError(f"users/seconds: got {users}/{seconds}, expected >= 1 each")
    app = create_app(policy, model_name="load-test")
    with tempfile.TemporaryDirectory() as tmp, BackgroundServer(app) as srv:
        body = Path(tmp) / "body.json"
        body.write_text(json.dumps(request_from_observation(observation, with_calibration=False)))
        cmd = [
            sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--only-summary",
            "-u", str(users), "-r", str(users), "-t", f"{seconds}s", "--stop-timeout", "10",
            "--host", srv.url, "--csv", str(Path(tmp) / "load"), "--exit-code-on-error", "0",
        ]  # fmt: skip
        env = {**os.environ, "DRIVE_VLA_LOAD_BODY": str(body)}
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=seconds + 120)
        stats = Path(tmp) / "load_stats.csv"
        if proc.returncode != 0 or not stats.is_file():
            raise RuntimeError(f"locust exited with {proc.returncode}: {proc.stderr[-2000:]}")
        row = next(r for r in csv.DictReader(stats.open()) if r["Name"] == "Aggregated")
        if int(row["Request Count"]) == 0:
            raise RuntimeError(
                f"load test: no request finished in {seconds} s with {users} client(s); give it more seconds"
            )
        health = app.state.service.stats
    return {
        "users": users,
        "seconds": seconds,
        "requests": int(row["Request Count"]),
        "failures": int(row["Failure Count"]),
        "busy_503": int(health["busy"]),
        "throughput_rps": round(float(row["Requests/s"]), 2),
        "p50_ms": float(row["50%"]),
        "p99_ms": float(row["99%"]),
        "max_ms": round(float(row["Max Response Time"]), 1),
    }
