"""`drive-vla train`: train a policy (or the ego-MLP baseline) from a YAML recipe; export it to <run>/policy."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="training recipe YAML, e.g. configs/train/embedded_tiny.yaml")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe field (repeatable), e.g. --set trainer.max_steps=50 --set data.batch_size=2",
    )
    parser.add_argument("--out", required=True, help="run folder, e.g. runs/embedded_tiny")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its last checkpoint (a DAgger recipe always resumes after its last "
        "completed round)",
    )
    parser.add_argument("--print-config", action="store_true", help="print the resolved recipe and exit")


def run(args: argparse.Namespace) -> int:
    from drive_vla.config import ConfigError, to_dict
    from drive_vla.training.config import load_train_config

    try:
        cfg = load_train_config(args.config, args.overrides)
    except ConfigError as exc:
        print(f"drive-vla train: {exc}", file=sys.stderr)
        return 2
    if args.print_config:
        import yaml

        print(yaml.safe_dump(to_dict(cfg), sort_keys=False), end="")
        return 0

    from drive_vla.training.run import TrainSetupError, train

    if cfg.dagger.rounds > 0:
        return _run_dagger(cfg, Path(args.out))
    if cfg.stage == "perception":
        return _run_perception(cfg, Path(args.out))
    try:
        result = train(cfg, Path(args.out), resume=args.resume)
    except TrainSetupError as exc:  # bad input found before training: config, data, labels, resume
        print(f"drive-vla train: {exc}", file=sys.stderr)
        return 2
    val = {k: v for k, v in result.metrics.items() if k.startswith("val/l2_")}
    if val:
        print("validation: " + ", ".join(f"{k}={v:.3f}" for k, v in sorted(val.items())))
    print(f"checkpoint: {result.last_checkpoint}")
    print(f"policy exported to {result.policy_dir}")
    return 0


def _run_dagger(cfg, out: Path) -> int:
    """The recipe's DAgger rounds; a re-run with the same --out resumes after the last completed round."""
    from drive_vla.training.dagger import METRICS_FILE, format_round, run_dagger
    from drive_vla.training.run import TrainSetupError

    try:
        result = run_dagger(cfg, out)
    except TrainSetupError as exc:
        print(f"drive-vla train: {exc}", file=sys.stderr)
        return 2
    for record in result.rounds:
        print(format_round(record))
    print(f"per-round metrics: {out / METRICS_FILE}")
    print(f"policy exported to {result.policy_dir}")
    return 0


def _run_perception(cfg, out: Path) -> int:
    """The perception stage: a free-distance head with its own backbone, trained alone on the init_from policy."""
    from drive_vla.training.perception import run_perception
    from drive_vla.training.run import TrainSetupError

    try:
        result = run_perception(cfg, out, progress=cfg.logging.progress_bar)
    except TrainSetupError as exc:
        print(f"drive-vla train: {exc}", file=sys.stderr)
        return 2
    last = result.history[-1] if result.history else {}
    if last.get("val"):
        from drive_vla.training.perception import describe

        print(f"validation: {describe(last['val'])}")
    print(f"per-epoch metrics: {result.metrics_file}")
    print(f"policy exported to {result.policy_dir}")
    return 0
