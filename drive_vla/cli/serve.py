"""`drive-vla serve`: the plan/explain HTTP service for a saved policy."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from drive_vla.serve.app import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_WAITING, DEFAULT_WAIT_TIMEOUT_S


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy", required=True, type=Path, help="directory written by DrivingPolicy.save_pretrained")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: loopback only)")
    parser.add_argument("--port", type=int, default=8000, help="TCP port (default: 8000)")
    parser.add_argument(
        "--max-body-mb",
        type=float,
        default=DEFAULT_MAX_BODY_BYTES / 2**20,
        help="reject larger request bodies with 413 (default: %(default)s MiB)",
    )
    parser.add_argument(
        "--quantize",
        default="none",
        help="weights of a VLA policy: 'none' (float32) or 'int8' (PyTorch dynamic INT8 linear layers, CPU)",
    )
    parser.add_argument(
        "--max-waiting",
        type=int,
        default=DEFAULT_MAX_WAITING,
        help="requests that may wait for the model at once; one more is answered 503 (default: %(default)s)",
    )
    parser.add_argument(
        "--wait-timeout-s",
        type=float,
        default=DEFAULT_WAIT_TIMEOUT_S,
        help="answer 503 to a request that waited this long for the model (default: %(default)s)",
    )
    parser.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])


def run(args: argparse.Namespace) -> int:
    if not 0 <= args.port <= 65535:
        print(f"drive-vla serve: --port: got {args.port}, expected 0..65535", file=sys.stderr)
        return 2
    from drive_vla.model.quantize import check_quantize

    try:
        check_quantize(args.quantize, "cpu", "--quantize")
    except ValueError as exc:
        print(f"drive-vla serve: {exc}", file=sys.stderr)
        return 2
    if args.max_waiting < 0 or not args.wait_timeout_s > 0:
        print(
            f"drive-vla serve: --max-waiting/--wait-timeout-s: got {args.max_waiting}/{args.wait_timeout_s}, "
            "expected >= 0 and > 0",
            file=sys.stderr,
        )
        return 2
    if not args.policy.is_dir():
        print(f"drive-vla serve: --policy: {args.policy} is not a directory", file=sys.stderr)
        return 2
    from drive_vla.serve import serve

    print(f"serving {args.policy} on http://{args.host}:{args.port} (docs at /docs)", file=sys.stderr)
    serve(
        args.policy,
        args.host,
        args.port,
        max_body_bytes=int(args.max_body_mb * 2**20),
        log_level=args.log_level,
        quantize=args.quantize,
        max_waiting=args.max_waiting,
        wait_timeout_s=args.wait_timeout_s,
    )
    return 0
