"""Dataset splits: nuscenes-devkit's official scene splits for v1.0-*, else ``<version>/splits.json``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

OFFICIAL_VERSIONS = ("v1.0-mini", "v1.0-trainval", "v1.0-test")
SPLITS_FILE = "splits.json"


class SplitError(ValueError):
    """An unknown split, or a splits file that is missing or malformed."""


def available_splits(dataroot: str | Path, version: str) -> dict[str, list[str]]:
    """Split name -> scene names: the devkit's splits for official versions, else ``<version>/splits.json``."""
    if version in OFFICIAL_VERSIONS:
        from nuscenes.utils.splits import create_splits_scenes

        return create_splits_scenes()
    path = Path(dataroot) / version / SPLITS_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise SplitError(f"splits file {path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
        raise SplitError(f"splits file {path}: expected {{split name: [scene names]}}")
    return data


def scenes_for_split(dataroot: str | Path, version: str, split: str | None, dataset_scenes: Sequence[str]) -> list[str]:
    """Scene names of ``split`` present in the dataset, in the dataset's scene order (all if split is None).

    Raises:
        SplitError: the split is unknown (the message lists the available ones) or has no scene here.
    """
    if split is None:
        return list(dataset_scenes)
    splits = available_splits(dataroot, version)
    if split not in splits:
        where = (
            "nuscenes-devkit official splits"
            if version in OFFICIAL_VERSIONS
            else str(Path(dataroot) / version / SPLITS_FILE)
        )
        raise SplitError(f"split: got {split!r}, expected one of {sorted(splits)} ({where})")
    members = set(splits[split])
    scenes = [s for s in dataset_scenes if s in members]
    if members and not scenes:
        raise SplitError(f"split {split!r}: none of its {len(members)} scenes is in {Path(dataroot) / version}")
    return scenes
