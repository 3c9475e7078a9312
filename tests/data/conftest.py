"""Fixtures for the data tests: tiny nuScenes-format datasets written once per session."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))

import nuscenes_factory  # noqa: E402


@pytest.fixture(scope="session")
def keyframe_dataset(keyframe_dir, tmp_path_factory) -> nuscenes_factory.KeyframeDataset:
    """The real keyframe along the known path: 12 keyframes, no CAN bus (written once, read-only)."""
    return nuscenes_factory.write_keyframe_dataset(keyframe_dir, tmp_path_factory.mktemp("keyframe") / "nuscenes")


@pytest.fixture(scope="session")
def synthetic_dataset(tmp_path_factory) -> tuple[Path, str, list[list[str]]]:
    """Two synthetic scenes with CAN bus and one labelled sample (written once, read-only)."""
    root = tmp_path_factory.mktemp("synthetic") / "nuscenes"
    tokens = nuscenes_factory.write_synthetic_dataset(root)
    return root, "v1.0-synthetic", tokens
