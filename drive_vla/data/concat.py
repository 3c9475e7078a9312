"""ConcatSamples: several sample sources (readers or lists) read as one, keeping the readers' image-free paths."""

from __future__ import annotations

import bisect
from collections.abc import Sequence

from drive_vla.data.labels import language_texts
from drive_vla.types import Sample, Trajectory


class ConcatSamples:
    """Samples of ``sources`` one after the other; ``future``/``texts`` avoid images where a source can.

    Args:
        sources: at least one sequence of Samples (e.g. ``NuScenesReader``s).
    """

    def __init__(self, sources: Sequence[Sequence[Sample]]) -> None:
        if not sources:
            raise ValueError("sources: got none, expected at least one sample source")
        self.sources = list(sources)
        self.starts: list[int] = []
        total = 0
        for src in self.sources:
            self.starts.append(total)
            total += len(src)
        self._len = total

    def __len__(self) -> int:
        return self._len

    def locate(self, i: int) -> tuple[Sequence[Sample], int]:
        """(source, index in it) of sample ``i``."""
        if not 0 <= i < self._len:
            raise IndexError(f"sample index: got {i}, expected 0 <= i < {self._len}")
        s = bisect.bisect_right(self.starts, i) - 1
        return self.sources[s], i - self.starts[s]

    def __getitem__(self, i: int) -> Sample:
        src, j = self.locate(int(i))
        return src[j]

    def future(self, i: int) -> Trajectory:
        src, j = self.locate(int(i))
        fast = getattr(src, "future", None)
        return fast(j) if callable(fast) else src[j].targets.trajectory

    def texts(self, i: int) -> list[str]:
        src, j = self.locate(int(i))
        fast = getattr(src, "texts", None)
        if callable(fast):
            return list(fast(j))
        sample = src[j]
        return language_texts(sample.observation.instruction, sample.targets.explanation, sample.targets.qa)

    def qa(self, i: int) -> list[tuple[str, str]]:
        src, j = self.locate(int(i))
        fast = getattr(src, "qa", None)
        return list(fast(j)) if callable(fast) else list(src[j].targets.qa)
