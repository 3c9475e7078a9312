"""Refuse a stage whose dataset lacks the labels it trains on, before any training work."""

from __future__ import annotations

from collections.abc import Sequence

from drive_vla.data.datamodule import evenly_spaced
from drive_vla.types import Sample

HOW_TO_GET = {
    "qa": "`drive-vla data make-embedded` writes QA for the embedded world; for nuScenes pass "
    "data.qa_file=<DriveLM v1.1 or nuScenes-QA JSON> (check it with `drive-vla data qa-stats --qa-file F`)",
    "explanation": "`drive-vla data make-embedded` writes explanations; for nuScenes pass data.qa_file=<DriveLM "
    "v1.1 JSON>: each keyframe's behavior answer becomes its explanation and meta-action (nuScenes-QA has no "
    "behavior answers, and a frame without one has no explanation); `drive-vla data qa-stats` counts them",
    "control": "control labels come from the CAN bus (nuScenes: the can_bus expansion under the dataroot)",
    "meta_action": "meta-actions are derived by the reader from the future trajectory",
}


def has_label(sample: Sample, label: str) -> bool:
    """Whether ``sample`` carries ``label`` ("qa", "explanation", "control", "meta_action")."""
    t = sample.targets
    if label == "qa":
        return len(t.qa) > 0
    if label == "explanation":
        return bool(t.explanation)
    if label == "control":
        return t.control is not None
    if label == "meta_action":
        return bool(t.meta_action)
    raise ValueError(f"label: got {label!r}, expected one of {sorted(HOW_TO_GET)}")


def check_required_labels(
    dataset: Sequence[Sample], required: Sequence[str], stage: str, where: str, probe: int = 32
) -> dict[str, int]:
    """Probe ``probe`` evenly spaced samples; raise ValueError if a required label appears in none.

    Returns label -> number of probed samples that have it.
    """
    if not required:
        return {}
    idx = evenly_spaced(len(dataset), probe)
    samples = [dataset[i] for i in idx]
    counts = {label: sum(has_label(s, label) for s in samples) for label in required}
    missing = [label for label, n in counts.items() if n == 0]
    if missing:
        hints = "; ".join(HOW_TO_GET[m] for m in missing)
        raise ValueError(
            f"data.require_labels: stage {stage!r} needs {missing} labels, but none of the {len(samples)} probed "
            f"samples of the {where} has them ({hints})"
        )
    return counts
