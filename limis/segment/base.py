"""The Segmenter protocol: (embedded slice, box/points/previous mask) -> mask with a quality score."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, Sequence, runtime_checkable

import numpy as np

from limis.imaging.slice_image import Box

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Prompt:
    """What the user or detector says about one object on one displayed slice.

    `box` is XYXY display pixels; `points` is (N, 2) of (x = column, y = row) display pixels with
    `point_labels` 1 (inside) / 0 (outside); `mask_logits` is a previous low-resolution output of
    the same segmenter, reused as a dense prompt.
    """

    box: Box | None = None
    points: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), dtype=np.float32))
    point_labels: np.ndarray = field(default_factory=lambda: np.zeros((0,), dtype=np.int64))
    mask_logits: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.box is None and len(self.points) == 0:
            raise ValueError("a prompt needs a box or at least one point")


@dataclass(frozen=True)
class SegmentResult:
    """Boolean (rows, cols) mask, the model's predicted IoU, and low-res logits for reuse.

    `candidates` holds every mask the model proposed (best first) as (mask, score) pairs.
    """

    mask: np.ndarray
    score: float
    logits: np.ndarray
    candidates: tuple[tuple[np.ndarray, float], ...] = ()


@dataclass(frozen=True)
class Embedding:
    """An encoded slice: backend features plus the sizes needed to map prompts and masks."""

    features: Any
    original_size: tuple[int, int]  # (rows, cols) of the displayed slice
    input_size: tuple[int, int]  # (rows, cols) after resizing the longest side, before padding


@runtime_checkable
class Segmenter(Protocol):
    """Encodes slices once, then turns prompts into masks many times.

    `name` and `weights_path` identify the embeddings (caches never mix models); `device` is where
    it runs (a GPU batches encodes).
    """

    name: str
    weights_path: str | None
    device: torch.device

    def embed(self, slices: Sequence[np.ndarray]) -> list[Embedding]:
        """Encode displayed slices (float32 (rows, cols) in [0, 1]) as one batch."""
        ...

    def segment(self, embedding: Embedding, prompts: Sequence[Prompt]) -> list[SegmentResult]:
        """One result per prompt, all on the same embedded slice."""
        ...
