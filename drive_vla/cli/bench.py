"""`drive-vla bench NAME`: run one benchmark, print its table and write JSON.

Each benchmark lives beside the code it measures, in a module that defines
`add_arguments(parser)` and `run(args) -> list[dict]` (the table rows).
"""

from __future__ import annotations

import argparse
import importlib

from drive_vla.benchmarking import emit

BENCHES: dict[str, tuple[str, str]] = {
    "import": ("drive_vla.bench_import", "import time of the package and its heavy dependencies"),
    "data": ("drive_vla.data.bench", "world steps/s, rendering, dataset writing, reader cold/cached"),
    "policy": ("drive_vla.model.bench", "parameters, tokens per plan, predict latency and memory"),
    "train": ("drive_vla.training.bench", "training samples/s and step time"),
    "eval": ("drive_vla.eval.bench", "open-loop metric throughput"),
    "drive": ("drive_vla.sim.bench_drive", "closed-loop steps/s in the embedded world"),
    "lateral": ("drive_vla.eval.lateral_probe", "how a policy's plan corrects a known lateral offset (bias, slope)"),
    "speed": ("drive_vla.eval.speed_probe", "how a policy's planned speed change follows the expert's, cameras on/off"),
    "obstacle": (
        "drive_vla.eval.obstacle_probe",
        "does a policy brake for a car standing in its path, and only for it",
    ),
    "driving": ("drive_vla.cli.bench_driving", "train a recipe with several seeds, drive a suite, compare planners"),
    "robustness": (
        "drive_vla.cli.bench_robustness",
        "fault campaigns: sensor data through the agent, generated HTTP requests",
    ),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="bench", metavar="NAME", required=True)
    for name, (module_name, help_text) in BENCHES.items():
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--json", default=f"runs/bench/{name}.json", help="where to write the JSON result")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if not exc.name or not module_name.startswith(exc.name):
                raise
            p.set_defaults(_missing=module_name)
            continue
        module.add_arguments(p)
        p.set_defaults(_module=module_name)


def run(args: argparse.Namespace) -> int:
    if getattr(args, "_missing", None):
        print(f"drive-vla bench {args.bench}: not built yet ({args._missing} does not exist)")
        return 2
    module = importlib.import_module(args._module)
    rows = module.run(args)
    emit(args.bench, rows, args.json)
    return 0
