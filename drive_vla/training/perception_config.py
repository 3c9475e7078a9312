"""PerceptionConfig: the head the perception stage (``stage: perception``) adds to a driving policy."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from drive_vla.model.head_configs import FreeSpaceConfig


@dataclass
class PerceptionConfig:
    """``TrainConfig.perception``: the head the perception stage adds to the ``init_from`` policy.

    Attributes:
        free_space: the head's config; ``enabled`` and ``source: own`` are required.
        flip: mirror half of each batch left to right (images and route points; the label is unchanged).
    """

    free_space: FreeSpaceConfig = dataclasses.field(
        default_factory=lambda: FreeSpaceConfig(enabled=True, source="own", cap_speed=True)
    )
    flip: bool = True

    def __post_init__(self) -> None:
        if not self.free_space.enabled or self.free_space.source != "own":
            raise ValueError(
                f"perception.free_space: got enabled={self.free_space.enabled} source={self.free_space.source!r}, "
                "expected enabled=true and source='own' (the stage trains a head with its own backbone)"
            )
