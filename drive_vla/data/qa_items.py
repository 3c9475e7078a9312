"""Epoch items for partially labelled data: every QA pair once per epoch, beside planning items, in a fixed order.

A frame with k QA pairs gives k QA items, each a copy of the sample that carries exactly one pair and no
planning labels (trajectory masked, no control, no explanation). Planning items carry the sample's
trajectory, control and explanation and no QA pair. Each loss term then averages over the items that
carry its label, and a text target is never drawn at random.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
from torch.utils.data import Dataset

from drive_vla.types import Sample, Targets, Trajectory

PLANNING = -1  # pair index of a planning item


def qa_counts(dataset) -> list[int]:
    """QA pairs of each sample of a ``SampleDataset``, without reading images where its source can."""
    fast = getattr(dataset.source, "qa", None)
    if callable(fast):
        return [len(fast(i)) for i in dataset.indices]
    return [len(dataset[p].targets.qa) for p in range(len(dataset))]


def build_items(counts: Sequence[int], qa_ratio: float = 0.0) -> list[tuple[int, int]]:
    """(position, pair index | PLANNING) items of one epoch.

    Args:
        counts: QA pairs per sample.
        qa_ratio: share of QA items in the epoch. 0 = every QA pair and every sample (as a planning item)
            once; in (0, 1) the planning items are as many as needed for that share (evenly spaced over
            the samples, repeating them when more are needed); 1 = QA items only. Without any QA pair
            the epoch is every sample once.

    Raises:
        ValueError: ``qa_ratio`` outside [0, 1].
    """
    if not 0.0 <= qa_ratio <= 1.0:
        raise ValueError(f"data.qa_ratio: got {qa_ratio}, expected a share in [0, 1] (0 = natural mix)")
    qa_items = [(p, k) for p, n in enumerate(counts) for k in range(n)]
    n = len(counts)
    if not qa_items or qa_ratio == 0.0:
        return qa_items + [(p, PLANNING) for p in range(n)]
    n_plan = round(len(qa_items) * (1.0 - qa_ratio) / qa_ratio)
    if n_plan == 0 or n == 0:
        return qa_items
    positions = np.floor(np.arange(n_plan) * n / n_plan).astype(int) % n if n_plan <= n else np.arange(n_plan) % n
    return qa_items + [(int(p), PLANNING) for p in positions]


def qa_item(sample: Sample, pair: int) -> Sample:
    """``sample`` restricted to one item: its QA pair ``pair`` alone, or its planning labels (PLANNING)."""
    t = sample.targets
    if pair == PLANNING:
        return dataclasses.replace(sample, targets=dataclasses.replace(t, qa=()))
    traj = t.trajectory
    masked = Trajectory(traj.xy, traj.yaw_rad, np.zeros(len(traj), dtype=bool), traj.dt_s)
    targets = Targets(trajectory=masked, meta_action=t.meta_action, qa=(t.qa[pair],), future_boxes=t.future_boxes)
    return dataclasses.replace(sample, targets=targets)


class QAItemDataset(Dataset):
    """Items of ``build_items`` over a SampleDataset; ``len`` is the epoch's item count."""

    def __init__(self, base, qa_ratio: float = 0.0) -> None:
        self.base = base
        self.counts = qa_counts(base)
        self.items = build_items(self.counts, qa_ratio)
        if not self.items:
            raise ValueError("dataset size: got 0 items, expected at least one sample")

    @property
    def num_qa_items(self) -> int:
        return sum(1 for _, k in self.items if k != PLANNING)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Sample:
        position, pair = self.items[i]
        sample = self.base[position]
        if pair != PLANNING and pair >= len(sample.targets.qa):
            raise ValueError(
                f"dataset[{position}].targets.qa: got {len(sample.targets.qa)} pairs, expected more than {pair} "
                "(the source's qa() and its samples disagree)"
            )
        return qa_item(sample, pair)
