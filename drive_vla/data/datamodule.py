"""Lightning DataModule over nuScenes-format readers (or any sequence of Samples), with resumable sample order."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from drive_vla.data.labels import language_texts
from drive_vla.types import Batch, Sample


def collate_samples(samples: Sequence[Sample]) -> Batch:
    """DataLoader collate: a list of Samples -> ``Batch.from_samples``."""
    return Batch.from_samples(samples)


def move_batch(batch: Batch, device: torch.device | str) -> Batch:
    """A copy of ``batch`` with every tensor field on ``device`` (Samples stay as they are)."""
    moved = {
        f.name: getattr(batch, f.name).to(device)
        for f in dataclasses.fields(batch)
        if isinstance(getattr(batch, f.name), torch.Tensor)
    }
    return dataclasses.replace(batch, **moved)


def evenly_spaced(n: int, k: int) -> list[int]:
    """``k`` indices spread evenly over ``range(n)`` (all of them when k <= 0 or k >= n)."""
    if k <= 0 or k >= n:
        return list(range(n))
    return sorted({int(i) for i in np.linspace(0, n - 1, k).round()})


class SampleDataset(Dataset):
    """Map-style dataset over anything with ``len()`` and ``[i] -> Sample`` (a reader or a list)."""

    def __init__(self, source: Sequence[Sample], indices: Sequence[int] | None = None) -> None:
        self.source = source
        self.indices = list(range(len(source))) if indices is None else list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def trajectories(self, positions: Sequence[int] | None = None) -> list:
        """Future Trajectories at ``positions`` (all if None), without images when the source can do that."""
        positions = range(len(self)) if positions is None else positions
        fast = getattr(self.source, "future", None)  # NuScenesReader.future(i) reads no image
        if callable(fast):
            return [fast(self.indices[p]) for p in positions]
        return [self[p].targets.trajectory for p in positions]

    def texts(self, positions: Sequence[int] | None = None) -> list[str]:
        """Instructions, explanations, QA questions and answers at ``positions`` (all if None), flattened;
        without images when the source can do that (``NuScenesReader.texts``)."""
        positions = range(len(self)) if positions is None else positions
        fast = getattr(self.source, "texts", None)
        if callable(fast):
            return [t for p in positions for t in fast(self.indices[p])]
        out: list[str] = []
        for p in positions:
            sample = self[p]
            out += language_texts(sample.observation.instruction, sample.targets.explanation, sample.targets.qa)
        return out

    def __getitem__(self, i: int) -> Sample:
        sample = self.source[self.indices[i]]
        if not isinstance(sample, Sample):
            raise ValueError(f"dataset[{i}]: got {type(sample).__name__}, expected a drive_vla.types.Sample")
        return sample


class EpochSampler(Sampler[int]):
    """Deterministic per-epoch order (seeded shuffle), sharded over ranks, able to skip what was consumed.

    The order of epoch ``e`` depends only on (seed, e), so a resumed run sees exactly the samples an
    uninterrupted run would. ``len()`` is always the full per-rank epoch, also while skipping, which is
    what Lightning's loop counting expects on a mid-epoch restart.
    """

    def __init__(self, n: int, seed: int = 0, shuffle: bool = True, rank: int = 0, world_size: int = 1) -> None:
        if n < 1:
            raise ValueError(f"dataset size: got {n}, expected at least one sample")
        self.n, self.seed, self.shuffle = n, seed, shuffle
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        self.skip = 0  # samples of the current epoch already consumed (set on resume)

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.skip = 0
        self.epoch = epoch

    def order(self, epoch: int) -> list[int]:
        """This rank's indices for ``epoch`` (padded by wrapping so every rank has the same count)."""
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            idx = torch.randperm(self.n, generator=g).tolist()
        else:
            idx = list(range(self.n))
        total = -(-self.n // self.world_size) * self.world_size
        idx = (idx * (total // self.n + 1))[:total]
        return idx[self.rank : total : self.world_size]

    def __len__(self) -> int:
        return -(-self.n // self.world_size)

    def __iter__(self) -> Iterator[int]:
        skip, self.skip = self.skip, 0
        return iter(self.order(self.epoch)[skip:])


class ResumableDataLoader(DataLoader):
    """DataLoader whose position in the epoch is saved in Lightning checkpoints (``state_dict``).

    ``progress`` returns batches of the current epoch already trained (the trainer's count); the loader
    cannot count them itself because Lightning prefetches one batch ahead.
    """

    def __init__(self, *args: Any, progress: Callable[[], int] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.progress = progress

    def state_dict(self) -> dict[str, int]:
        sampler = self.sampler
        assert isinstance(sampler, EpochSampler)
        done = int(self.progress()) if self.progress is not None else 0
        if done >= len(self):  # the epoch is finished: the next batch starts the next epoch
            return {"epoch": sampler.epoch + 1, "samples_done": 0}
        return {"epoch": sampler.epoch, "samples_done": done * int(self.batch_size or 1)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        sampler = self.sampler
        assert isinstance(sampler, EpochSampler)
        sampler.epoch = int(state["epoch"])
        sampler.skip = int(state["samples_done"])


class DriveDataModule(L.LightningDataModule):
    """Train/val DataLoaders of ``Batch`` over a nuScenes-format dataset or given Sample sequences.

    Args:
        dataroot: nuScenes-format data root (ignored when ``train``/``val`` are given).
        version: dataset version folder.
        train_split: split name of the training scenes.
        val_split: split name of the validation scenes ("" = no validation).
        image_hw: (height, width) of the camera images the reader returns.
        cache_dir: reader cache folder ("" = none).
        qa_file: DriveLM-style QA file for real nuScenes ("" = none).
        batch_size: samples per batch per device.
        num_workers: DataLoader workers.
        seed: seed of the shuffled order.
        shuffle: shuffle training samples.
        max_train_samples: keep only this many training samples, evenly spaced (0 = all).
        max_val_samples: keep only this many validation samples (0 = all).
        train: Samples to train on instead of a reader (tests, in-memory data).
        val: Samples to validate on instead of a reader.
        extra_train: more nuScenes-format training sources, (dataroot, version, split) each, read after
            the main one (e.g. the on-policy scenes of earlier DAgger rounds); they share ``image_hw``,
            ``cache_dir`` and ``qa_file``.
        qa_items: iterate QA items and planning items (``drive_vla.data.qa_items``): every QA pair once per
            epoch in a seeded order, and validation over every pair; off = one item per sample.
        qa_ratio: share of QA items in a training epoch with ``qa_items`` (0 = every pair and every
            sample once); validation always holds every pair and every sample.

    Every source is opened with ``PlanLabelledReader``: a sample with an expert-plan label trains on
    that plan (see ``drive_vla.data.expert_plans``); every other sample reads as with ``NuScenesReader``.
    """

    def __init__(
        self,
        dataroot: str = "",
        version: str = "",
        train_split: str = "train",
        val_split: str = "val",
        image_hw: tuple[int, int] | None = None,
        cache_dir: str = "",
        cameras: bool = True,
        qa_file: str = "",
        batch_size: int = 4,
        num_workers: int = 0,
        seed: int = 0,
        shuffle: bool = True,
        max_train_samples: int = 0,
        max_val_samples: int = 0,
        train: Sequence[Sample] | None = None,
        val: Sequence[Sample] | None = None,
        extra_train: Sequence[tuple[str, str, str]] = (),
        qa_items: bool = False,
        qa_ratio: float = 0.0,
    ) -> None:
        super().__init__()
        if not 0.0 <= qa_ratio <= 1.0:
            raise ValueError(f"qa_ratio: got {qa_ratio}, expected a share in [0, 1] (0 = natural mix)")
        self.qa_items, self.qa_ratio = qa_items, qa_ratio
        if train is None and not dataroot:
            raise ValueError("dataroot: got '', expected a dataset folder (or pass train=Samples)")
        for i, extra in enumerate(extra_train):
            if not isinstance(extra, (tuple, list)) or len(extra) != 3 or not all(isinstance(x, str) for x in extra):
                raise ValueError(f"extra_train[{i}]: got {extra!r}, expected (dataroot, version, split) strings")
        self.extra_train = [tuple(e) for e in extra_train]
        self.dataroot, self.version = dataroot, version
        self.train_split, self.val_split = train_split, val_split
        self.image_hw, self.cache_dir, self.qa_file = image_hw, cache_dir, qa_file
        self.cameras = cameras
        self.batch_size, self.num_workers, self.seed, self.shuffle = batch_size, num_workers, seed, shuffle
        self.max_train_samples, self.max_val_samples = max_train_samples, max_val_samples
        self._train_src, self._val_src = train, val
        self.train_set: SampleDataset | None = None
        self.val_set: SampleDataset | None = None

    def _reader(self, split: str, dataroot: str = "", version: str = "") -> Sequence[Sample]:
        from drive_vla.data.expert_plans import PlanLabelledReader

        return PlanLabelledReader(
            dataroot or self.dataroot,
            version or self.version,
            split=split or None,
            image_hw=tuple(self.image_hw) if self.image_hw else None,
            cache_dir=self.cache_dir or None,
            cameras=self.cameras,
            qa_file=self.qa_file or None,
        )

    def setup(self, stage: str | None = None) -> None:
        """Open the splits (idempotent)."""
        if self.train_set is None:
            src = self._train_src if self._train_src is not None else self._reader(self.train_split)
            if self.extra_train:
                from drive_vla.data.concat import ConcatSamples

                src = ConcatSamples([src, *(self._reader(s, root, v) for root, v, s in self.extra_train)])
            self.train_set = SampleDataset(src, evenly_spaced(len(src), self.max_train_samples))
            if len(self.train_set) == 0:
                raise ValueError(f"train split {self.train_split!r}: got 0 samples, expected at least one")
        if self.val_set is None and (self._val_src is not None or (self.val_split and self._train_src is None)):
            src = self._val_src if self._val_src is not None else self._reader(self.val_split)
            if len(src):
                self.val_set = SampleDataset(src, evenly_spaced(len(src), self.max_val_samples))

    def epoch_set(self, split: str) -> Dataset:
        """What the loader of ``split`` ("train" | "val") iterates: the samples, or their QA items."""
        base = self.train_set if split == "train" else self.val_set
        assert base is not None
        if not self.qa_items:
            return base
        from drive_vla.data.qa_items import QAItemDataset

        return QAItemDataset(base, self.qa_ratio if split == "train" else 0.0)

    def _generator(self) -> torch.Generator:
        # Each DataLoader iterator draws a base seed; from its own generator it leaves the global RNG
        # alone, so creating iterators after a resume does not shift dropout or label sampling.
        return torch.Generator().manual_seed(self.seed)

    def _rank_world(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def _progress(self) -> int:
        trainer = self.trainer
        return trainer.fit_loop.epoch_loop.batch_progress.current.processed if trainer is not None else 0

    def train_dataloader(self) -> ResumableDataLoader:
        self.setup("fit")
        assert self.train_set is not None
        rank, world = self._rank_world()
        items = self.epoch_set("train")
        sampler = EpochSampler(len(items), self.seed, self.shuffle, rank, world)
        return ResumableDataLoader(
            items,
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            collate_fn=collate_samples,
            persistent_workers=self.num_workers > 0,
            progress=self._progress,
            generator=self._generator(),
        )

    def val_dataloader(self) -> DataLoader | list:
        self.setup("validate")
        if self.val_set is None:
            return []
        rank, world = self._rank_world()
        items = self.epoch_set("val")
        return DataLoader(
            items,
            batch_size=self.batch_size,
            sampler=EpochSampler(len(items), self.seed, False, rank, world),
            num_workers=self.num_workers,
            collate_fn=collate_samples,
            generator=self._generator(),
        )
