"""Test configuration: offline, CPU, markers that skip cleanly when a resource is missing."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
KEYFRAME_DIR = SHARED_DATA / "nuscenes_keyframe"
sys.path.insert(0, str(REPO / "tests" / "fixtures"))  # shared test factories (nuscenes_factory, tiny_models)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _carla_server() -> bool:
    from drive_vla.cli.doctor import carla_server_answers

    host = os.environ.get("DRIVE_VLA_CARLA_HOST", "127.0.0.1")
    port = int(os.environ.get("DRIVE_VLA_CARLA_PORT", "2000"))
    return carla_server_answers(host, port, 1.0)


def _nuscenes() -> bool:
    return any((REPO / "datasets" / "nuscenes").glob("v1.0-*/sample.json"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    checks = {
        "gpu": (_cuda, "no CUDA device"),
        "carla": (_carla_server, "no CARLA server answers"),
        "nuscenes": (_nuscenes, "no nuScenes under datasets/nuscenes"),
    }
    cache: dict[str, bool] = {}
    for item in items:
        for marker, (check, why) in checks.items():
            if marker in item.keywords:
                if marker not in cache:
                    cache[marker] = check()
                if not cache[marker]:
                    item.add_marker(pytest.mark.skip(reason=why))


@pytest.fixture(scope="session")
def keyframe_dir() -> Path:
    """The real nuScenes keyframe fixture (read in place); skips when absent."""
    if not (KEYFRAME_DIR / "keyframe.json").is_file():
        pytest.skip(f"real nuScenes keyframe fixture not found at {KEYFRAME_DIR}")
    return KEYFRAME_DIR


@pytest.fixture(autouse=True)
def _torch_threads():
    import torch

    torch.manual_seed(0)
    yield
