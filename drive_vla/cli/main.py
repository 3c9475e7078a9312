"""Entry point of the `drive-vla` console script: builds the verb parsers and dispatches."""

from __future__ import annotations

import argparse
import importlib
import sys

# verb -> (module under drive_vla.cli, one-line help). Each module defines `add_arguments(parser)` and
# `run(args) -> int`; the module is imported only when its verb runs, so `--help` stays fast.
VERBS: dict[str, tuple[str, str]] = {
    "data": ("data", "make an embedded nuScenes-format dataset, or inspect any nuScenes-format dataset"),
    "train": ("train", "train a policy from a YAML recipe"),
    "eval": ("eval", "open-loop evaluation on a nuScenes-format dataset (L2, collision; ST-P3 and UniAD protocols)"),
    "drive": ("drive", "drive closed-loop in the embedded world or CARLA"),
    "compare": ("compare", "compare planners of drive reports over the same routes, route by route (paired intervals)"),
    "explain": ("explain", "ask a policy what it is doing and why"),
    "serve": ("serve", "HTTP service for plans and explanations"),
    "demo": ("demo", "the whole mission on the embedded world, end to end"),
    "bench": ("bench", "benchmarks that print a table and write JSON"),
    "doctor": ("doctor", "report versions, devices, CARLA server and datasets"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="drive-vla",
        description="drive-vla: a vision-language-action stack for autonomous driving.",
    )
    from drive_vla import __version__

    parser.add_argument("--version", action="version", version=f"drive-vla {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for verb, (_, help_text) in VERBS.items():
        sub.add_parser(verb, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv or argv[0] not in VERBS:
        parser.parse_args(argv or ["--help"])
        return 2
    verb = argv[0]
    module = importlib.import_module(f"drive_vla.cli.{VERBS[verb][0]}")
    verb_parser = argparse.ArgumentParser(prog=f"drive-vla {verb}", description=VERBS[verb][1])
    module.add_arguments(verb_parser)
    args = verb_parser.parse_args(argv[1:])
    return int(module.run(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
