"""Training examples for Grounding DINO: slice -> (augmented) RGB image, label-list caption, DETR targets.

Targets follow transformers' Grounding DINO loss: `class_labels` index the caption's phrases in
order (the model splits the caption at "." into phrases), `boxes` are normalised (cx, cy, w, h)
with the image's continuous edges as 0 and 1. Which sample sits at which place of the training
stream, and how it is augmented and captioned, is a pure function of (seed, position), so a
resumed or multi-process run sees exactly the same examples.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Sequence

import numpy as np
import torch

from limis.imaging.slice_image import Box
from limis.train.augment import AugmentConfig, augment
from limis.train.captions import caption_labels, caption_text
from limis.train.samples import SliceSample

ORDER_STREAM, SAMPLE_STREAM = 0, 1  # keep the shuffling and per-sample random streams apart


@dataclass(frozen=True)
class Example:
    """One training image: `image` (3, rows, cols) float32 in 0..255; `labels` canonical names in caption
    order; `class_labels` (n,) int64 phrase index per box; `boxes` (n, 4) float32 normalised cxcywh."""

    image: torch.Tensor
    labels: list[str]
    class_labels: torch.Tensor
    boxes: torch.Tensor


def slice_rgb(pixels: np.ndarray) -> torch.Tensor:
    """Windowed [0, 1] slice (rows, cols) -> (3, rows, cols) float32 0..255, as `GroundingDinoDetector` feeds it."""
    return torch.as_tensor(np.asarray(pixels, dtype=np.float32) * 255.0).repeat(3, 1, 1)


def normalised_cxcywh(box: Box, shape: tuple[int, int]) -> tuple[float, float, float, float]:
    """XYXY pixel-centre box (inclusive) on a (rows, cols) slice -> (cx, cy, w, h) in [0, 1] of the image edges."""
    rows, cols = shape
    x0, y0, x1, y1 = box[0], box[1], box[2] + 1.0, box[3] + 1.0  # pixel i spans [i, i + 1)
    return (x0 + x1) / 2 / cols, (y0 + y1) / 2 / rows, (x1 - x0) / cols, (y1 - y0) / rows


def stream_sample(seed: int, position: int, count: int) -> int:
    """Index of the sample at `position` of the endless training stream (a new shuffle of all `count` per epoch)."""
    epoch, offset = divmod(position, count)
    return int(_permutation(seed, epoch, count)[offset])


@lru_cache(maxsize=4)
def _permutation(seed: int, epoch: int, count: int) -> np.ndarray:
    return np.random.default_rng([seed, ORDER_STREAM, epoch]).permutation(count)


def process_positions(step: int, batch_size: int, process_index: int, num_processes: int) -> range:
    """Stream positions one process trains on at `step` (0-based): its slice of the global batch."""
    start = (step * num_processes + process_index) * batch_size
    return range(start, start + batch_size)


def evenly_spaced(items: Sequence[Any], cap: int | None) -> list[Any]:
    """At most `cap` items spread evenly over `items` (all of them when `cap` is None or large enough)."""
    if cap is None or cap >= len(items):
        return list(items)
    return [items[i] for i in np.linspace(0, len(items) - 1, cap).round().astype(int)]


class CaptionBudget:
    """Keeps captions within the model's text length; labels beyond it would be cut off mid-caption."""

    def __init__(self, tokenizer: Any, max_tokens: int) -> None:
        self.tokenizer = tokenizer
        self.budget = max_tokens - 2  # [CLS] and [SEP]
        self._costs: dict[str, int] = {}

    def fit(self, labels: list[str]) -> list[str]:
        """The longest prefix of `labels` whose caption fits."""
        used = 0
        for count, label in enumerate(labels):
            used += self._cost(label)
            if used > self.budget:
                return labels[:count]
        return labels

    def _cost(self, label: str) -> int:
        if label not in self._costs:
            self._costs[label] = len(self.tokenizer(caption_text([label]), add_special_tokens=False)["input_ids"])
        return self._costs[label]


def make_example(
    sample: SliceSample,
    rng: np.random.Generator,
    vocabulary: Sequence[str],
    distractors: int,
    budget: CaptionBudget,
    augmentation: AugmentConfig | None,
) -> Example:
    """Augment (unless `augmentation` is None), caption with every boxed structure plus absent distractors.

    Structures with a few pixels on the slice but too small to box are never used as distractors
    (the caption would call them absent while they are there).
    """
    if augmentation is not None:
        sample = augment(sample, rng, augmentation)
    boxes = {entry.structure: entry.box for entry in sample.boxes()}
    visible = {sample.names[i] for i in np.unique(sample.labels) if i in sample.names}
    choices = [name for name in vocabulary if name in boxes or name not in visible]
    labels = budget.fit(caption_labels(list(boxes), choices, rng, distractors))
    boxed = [(index, boxes[name]) for index, name in enumerate(labels) if name in boxes]
    shape = sample.labels.shape
    return Example(
        image=slice_rgb(sample.pixels),
        labels=labels,
        class_labels=torch.tensor([index for index, _ in boxed], dtype=torch.int64),
        boxes=torch.tensor([normalised_cxcywh(box, shape) for _, box in boxed], dtype=torch.float32).reshape(-1, 4),
    )


def stream_examples(
    samples: Sequence[SliceSample],
    positions: range,
    seed: int,
    vocabulary: Sequence[str],
    distractors: int,
    budget: CaptionBudget,
    augmentation: AugmentConfig | None,
) -> list[Example]:
    """The examples at `positions` of the training stream; each depends only on (seed, position)."""
    examples = []
    for position in positions:
        rng = np.random.default_rng([seed, SAMPLE_STREAM, position])
        sample = samples[stream_sample(seed, position, len(samples))]
        examples.append(make_example(sample, rng, vocabulary, distractors, budget, augmentation))
    return examples


def collate(examples: Sequence[Example], processor: Any, device: torch.device) -> dict[str, Any]:
    """Keyword arguments for `GroundingDinoForObjectDetection(**batch)`, targets under `labels`."""
    inputs = processor(
        images=[e.image for e in examples], text=[caption_text(e.labels) for e in examples],
        return_tensors="pt", padding="longest",
    )
    batch = {key: value.to(device) for key, value in inputs.items()}
    batch["labels"] = [{"class_labels": e.class_labels.to(device), "boxes": e.boxes.to(device)} for e in examples]
    return batch
