"""Import-time benchmark: seconds to import drive_vla and its heavy dependencies, each in a fresh process."""

from __future__ import annotations

import argparse
import subprocess
import sys

from drive_vla.benchmarking import median

MODULES = (
    "drive_vla",
    "drive_vla.types",
    "drive_vla.geometry",
    "drive_vla.cli.main",
    "torch",
    "transformers",
    "timm",
    "lightning",
    "nuscenes",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per module")


def import_seconds(module: str) -> float:
    """Wall time of `import module` in a fresh interpreter, measured inside it."""
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


def run(args: argparse.Namespace) -> list[dict]:
    rows = []
    for module in MODULES:
        times = [import_seconds(module) for _ in range(args.repeats)]
        rows.append({"module": module, "median_s": median(times), "min_s": min(times), "max_s": max(times)})
    return rows
