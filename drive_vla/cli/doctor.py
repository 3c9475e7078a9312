"""`drive-vla doctor`: versions, devices, CARLA server reachability and datasets found."""

from __future__ import annotations

import argparse
import importlib.metadata as md
import socket
from pathlib import Path

PACKAGES = (
    "torch",
    "torchvision",
    "transformers",
    "timm",
    "lightning",
    "peft",
    "nuscenes-devkit",
    "highway-env",
    "carla",
    "numpy",
    "shapely",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--carla-host", default="127.0.0.1", help="CARLA server host")
    parser.add_argument("--carla-port", type=int, default=2000, help="CARLA server RPC port")
    parser.add_argument("--timeout-s", type=float, default=1.0, help="seconds to wait for the CARLA server")
    parser.add_argument("--datasets", default="datasets", help="data root to look for datasets in")


def carla_server_answers(host: str, port: int, timeout_s: float) -> bool:
    """True when something accepts a TCP connection on host:port within timeout_s."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def find_datasets(root: Path) -> list[tuple[str, str]]:
    """(path, version) for every nuScenes-format dataset (a folder holding v*/sample.json) under root."""
    found = []
    if root.is_dir():
        for sample_json in sorted(root.glob("*/v*/sample.json")) + sorted(root.glob("v*/sample.json")):
            found.append((str(sample_json.parent.parent), sample_json.parent.name))
    return found


def version_of(package: str) -> str:
    try:
        return md.version(package)
    except md.PackageNotFoundError:
        return "not installed"


def run(args: argparse.Namespace) -> int:
    print("drive-vla doctor")
    for name in PACKAGES:
        print(f"  {name:<16} {version_of(name)}")
    import torch

    if torch.cuda.is_available():
        print(
            f"  cuda             yes: {torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}, bf16 {torch.cuda.is_bf16_supported()}"
        )
    else:
        print("  cuda             no (CPU only)")
    print(f"  cpu threads      {torch.get_num_threads()}")
    ok = carla_server_answers(args.carla_host, args.carla_port, args.timeout_s)
    print(f"  carla server     {args.carla_host}:{args.carla_port} {'answers' if ok else 'does not answer'}")
    datasets = find_datasets(Path(args.datasets))
    if datasets:
        for path, version in datasets:
            print(f"  dataset          {path} ({version})")
    else:
        print(f"  dataset          none under {args.datasets}/ (make one with `drive-vla data make-embedded`)")
    return 0
