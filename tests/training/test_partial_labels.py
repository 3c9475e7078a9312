"""Partially labelled data: QA items once per epoch, the QA ratio, zero for absent labels, align at 10 % QA."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from drive_vla.data.datamodule import DriveDataModule, SampleDataset
from drive_vla.data.qa_items import PLANNING, QAItemDataset, build_items
from drive_vla.training.config import LossWeights, OptimConfig, load_train_config
from drive_vla.training.module import DrivingModule, labelled_counts
from drive_vla.training.run import train
from drive_vla.types import Batch


def _with_pairs(samples, pairs_of):
    out = []
    for i, s in enumerate(samples):
        qa = tuple((f"q{i}.{k}", f"a{i}.{k}") for k in range(pairs_of(i)))
        out.append(dataclasses.replace(s, targets=dataclasses.replace(s.targets, qa=qa)))
    return out


def test_every_pair_once_per_epoch_in_a_seeded_order(sample_factory):
    samples = _with_pairs(sample_factory(6, seed=3, explanation=True), lambda i: i % 3)  # 0+1+2+0+1+2 = 6 pairs
    dm = DriveDataModule(train=samples, val=samples, batch_size=4, seed=5, qa_items=True)
    dm.setup("fit")

    def epoch(loader):
        return [(tuple(s.targets.qa), s.meta.token) for b in loader for s in b.samples]

    first = epoch(dm.train_dataloader())
    seen = [qa[0] for qa, _ in first if qa]
    assert sorted(seen) == sorted(p for s in samples for p in s.targets.qa) and len(seen) == 6
    assert sum(1 for qa, _ in first if not qa) == 6  # one planning item per sample
    assert first == epoch(dm.train_dataloader())  # the same seed and epoch give the same order
    val = epoch(dm.val_dataloader())
    assert sorted(qa[0] for qa, _ in val if qa) == sorted(seen)  # validation scores every pair
    item = QAItemDataset(SampleDataset(samples))[0]
    assert len(item.targets.qa) == 1 and not item.targets.trajectory.mask.any()
    assert item.targets.control is None and item.targets.explanation is None


def test_qa_ratio_sets_the_share_of_qa_items():
    counts = [4, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    natural = build_items(counts)
    assert sum(k != PLANNING for _, k in natural) == 4 and sum(k == PLANNING for _, k in natural) == 10
    half = build_items(counts, 0.5)
    assert sum(k == PLANNING for _, k in half) == 4
    assert sum(k == PLANNING for _, k in build_items(counts, 0.2)) == 16  # samples repeat to fill the share
    assert all(k != PLANNING for _, k in build_items(counts, 1.0))
    with pytest.raises(ValueError, match=r"data.qa_ratio: got 1.5"):
        build_items(counts, 1.5)


def test_a_batch_without_the_trained_label_adds_zero(tiny_policy_dir, sample_factory):
    from drive_vla.policy import DrivingPolicy

    net = DrivingPolicy.from_pretrained(tiny_policy_dir).model
    weights = LossWeights(waypoint_ce=0.0, control_ce=0.0, text_ce=1.0, head_l1=0.0, head_kl=0.0)
    module = DrivingModule(net, weights, OptimConfig())
    batch = Batch.from_samples(sample_factory(3, seed=4))  # no QA, no explanation
    losses = net.losses(batch)
    assert "text_ce" not in losses
    total = module.weighted_loss(losses)
    assert float(total.detach()) == 0.0 and total.requires_grad
    assert float(module.weighted_loss({})) == 0.0
    assert labelled_counts(batch)["text_ce"] == 1  # at least 1 for logging


def test_align_trains_when_ten_percent_of_samples_carry_qa(
    tmp_path, train_configs, sample_factory, tiny_overrides, tiny_model_overrides
):
    samples = _with_pairs(sample_factory(20, seed=6), lambda i: 3 if i in (0, 10) else 0)  # 2 of 20 samples
    cfg = load_train_config(
        train_configs / "align.yaml",
        tiny_overrides + tiny_model_overrides + ["trainer.max_steps=4", "data.qa_ratio=0.1", "data.label_probe=20"],
    )
    result = train(cfg, tmp_path / "run", train_samples=samples, val_samples=samples[:6])
    assert result.policy_dir.is_dir()
    assert torch.isfinite(torch.tensor(result.metrics.get("train/loss", 0.0))).item()
