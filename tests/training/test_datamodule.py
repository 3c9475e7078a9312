"""DataModule: collate to Batch, deterministic resumable order, sharding, nuScenes-format readers on disk."""

from __future__ import annotations

import torch

from drive_vla.data.datamodule import (
    DriveDataModule,
    EpochSampler,
    ResumableDataLoader,
    SampleDataset,
    collate_samples,
    evenly_spaced,
    move_batch,
)
from drive_vla.types import CAMERA_NAMES, Batch


def test_collate_builds_a_batch(tiny_samples):
    batch = collate_samples(tiny_samples[:3])
    assert isinstance(batch, Batch) and len(batch) == 3
    assert batch.images.shape == (3, len(CAMERA_NAMES), 3, 36, 64) and batch.images.dtype == torch.uint8
    assert batch.traj.shape == (3, 6, 3) and batch.traj_mask.all()
    moved = move_batch(batch, "cpu")
    assert moved.samples is batch.samples and torch.equal(moved.ego, batch.ego)


def test_epoch_sampler_order_is_seeded_per_epoch_and_skips():
    s = EpochSampler(10, seed=3)
    e0, e1 = list(s), s.order(1)
    assert sorted(e0) == list(range(10)) and e0 != e1
    assert e0 == EpochSampler(10, seed=3).order(0) and e0 != EpochSampler(10, seed=4).order(0)
    s.set_epoch(1)
    s.skip = 4
    assert list(s) == e1[4:] and len(s) == 10  # len stays the full epoch while skipping
    assert list(s) == e1  # the skip applies once
    assert list(EpochSampler(5, shuffle=False)) == [0, 1, 2, 3, 4]


def test_epoch_sampler_shards_over_ranks():
    parts = [list(EpochSampler(7, seed=0, rank=r, world_size=3)) for r in range(3)]
    assert [len(p) for p in parts] == [3, 3, 3]
    assert set(sum(parts, [])) == set(range(7))


def test_loader_state_round_trip(tiny_samples):
    ds = SampleDataset(tiny_samples[:10])
    done = {"n": 0}

    def loader() -> ResumableDataLoader:
        return ResumableDataLoader(
            ds, batch_size=3, sampler=EpochSampler(10, seed=1), collate_fn=collate_samples, progress=lambda: done["n"]
        )

    full = [[s.meta.token for s in b.samples] for b in loader()]
    first = loader()
    it = iter(first)
    next(it), next(it)
    done["n"] = 2
    state = first.state_dict()
    assert state == {"epoch": 0, "samples_done": 6}
    second = loader()
    second.load_state_dict(state)
    assert [[s.meta.token for s in b.samples] for b in second] == full[2:]
    done["n"] = 4  # the whole epoch (4 batches) was consumed: the next batch is epoch 1's first
    assert first.state_dict() == {"epoch": 1, "samples_done": 0}


def test_evenly_spaced():
    assert evenly_spaced(10, 0) == list(range(10))
    assert evenly_spaced(10, 3) == [0, 4, 9]
    assert evenly_spaced(4, 10) == [0, 1, 2, 3]


def test_datamodule_over_a_dataset_on_disk(synthetic_dataset):
    root, version = synthetic_dataset
    dm = DriveDataModule(str(root), version, image_hw=(18, 32), batch_size=4, max_val_samples=3)
    dm.setup("fit")
    assert len(dm.train_set) == 16 and len(dm.val_set) == 3
    batch = next(iter(dm.train_dataloader()))
    assert isinstance(batch, Batch) and batch.images.shape == (4, 6, 3, 18, 32)
    assert len(dm.train_set.trajectories([0, 1])) == 2
    assert next(iter(dm.val_dataloader())).images.shape[0] == 3


def test_datamodule_over_sample_lists(tiny_samples):
    dm = DriveDataModule(train=tiny_samples[:6], batch_size=4)
    dm.setup()
    assert dm.val_set is None and dm.val_dataloader() == []
    assert [len(b) for b in dm.train_dataloader()] == [4, 2]
