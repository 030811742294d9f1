"""Encoded training views for the lite-grounding head: frozen LiteMedSAM embeddings of canvases + canvas labels.

View 0 of a slice is the slice as displayed; later views are augmented (window jitter, rotation,
crop, +-12 % physical size, body off-centre). Encoding is the slow part (seconds per slice on a
CPU), so each (case, view) is written to `cache_dir` once and reused by every later run.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from limis.detect.canvas import CANVAS_MM, CanvasMap, labels_on_canvas, make_canvas
from limis.train.samples import AugmentConfig, SliceSample, augment

VIEW_AUGMENT = AugmentConfig(scale_range=(1.0, 1.0))  # physical size is jittered on the canvas instead


@dataclass(frozen=True)
class ViewConfig:
    """How augmented views are drawn; part of the cache key."""

    size_jitter: float = 0.12  # relative change of the physical pixel size, uniform +-
    max_shift: float = 12.0  # canvas pixels the body centre may move, uniform +-
    augment: AugmentConfig = field(default_factory=lambda: VIEW_AUGMENT)
    contrast_from_view: int = 3  # views from this one on also simulate a contrast phase (CT only)
    lumen_from_view: int = 6  # views from this one on also refill hollow organs (gas, oral contrast)


@dataclass
class EncodedViews:
    """N encoded canvases: embeddings (N, 256, 64, 64) float16, labels (N, 256, 256) int16 canvas labelmaps."""

    embeddings: torch.Tensor
    labels: torch.Tensor
    names: dict[int, str]
    slices: list[tuple[str, int, int]]  # (case, slice index, view)

    @staticmethod
    def concat(parts: Sequence["EncodedViews"]) -> "EncodedViews":
        names = {}
        for part in parts:
            for label_id, name in part.names.items():
                if names.setdefault(label_id, name) != name:
                    raise ValueError(f"label {label_id} means {names[label_id]} and {name} in different cases")
        return EncodedViews(torch.cat([p.embeddings for p in parts]), torch.cat([p.labels for p in parts]), names,
                            [s for p in parts for s in p.slices])


def view_canvas(sample: SliceSample, view: int, seed: int, config: ViewConfig) -> tuple[np.ndarray, np.ndarray, CanvasMap]:
    """(canvas pixels, canvas labels, canvas map) of one view of a sample; view 0 is unaugmented."""
    if view == 0:
        canvas, mapping = make_canvas(sample.pixels, sample.pixel_mm)
        return canvas, labels_on_canvas(sample.labels, mapping), mapping
    rng = np.random.default_rng([seed, view, sample.index, int(hashlib.sha1(sample.case_id.encode()).hexdigest()[:8], 16)])
    chosen = replace(config.augment, contrast_prob=float(view >= config.contrast_from_view),
                     lumen_prob=float(view >= config.lumen_from_view))
    moved = augment(sample, rng, chosen)
    size = 1.0 + rng.uniform(-config.size_jitter, config.size_jitter)
    shift = tuple(rng.uniform(-config.max_shift, config.max_shift, size=2))
    pixel_mm = (moved.pixel_mm[0] * size, moved.pixel_mm[1] * size)
    canvas, mapping = make_canvas(moved.pixels, pixel_mm, CANVAS_MM, shift=shift)
    return canvas, labels_on_canvas(moved.labels, mapping), mapping


def cache_path(samples: Sequence[SliceSample], segmenter, view: int, seed: int, config: ViewConfig, cache_dir) -> Path:
    """File of one (case, view) under `cache_dir`, keyed by everything that changes its content."""
    key = json.dumps({"case": samples[0].case_id, "view": view, "seed": seed, "config": asdict(config),
                      "slices": [s.index for s in samples], "encoder": str(getattr(segmenter, "weights_path", ""))},
                     sort_keys=True, default=str)
    return Path(cache_dir) / f"{samples[0].case_id}_view{view}_{hashlib.sha1(key.encode()).hexdigest()[:12]}.pt"


def encode_case_views(
    samples: Sequence[SliceSample],
    segmenter,
    view: int,
    *,
    seed: int,
    config: ViewConfig = ViewConfig(),
    cache_dir: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> EncodedViews:
    """Encode one view of every sample (all from one case); cached per (case, view, config, encoder)."""
    path = cache_path(samples, segmenter, view, seed, config, cache_dir) if cache_dir is not None else None
    if path is not None and path.is_file():
        saved = torch.load(str(path), map_location="cpu", weights_only=True)
        return EncodedViews(saved["embeddings"], saved["labels"], {int(k): v for k, v in saved["names"].items()},
                            [tuple(s) for s in saved["slices"]])
    embeddings, labels = [], []
    for done, sample in enumerate(samples, start=1):
        canvas, canvas_labels, _ = view_canvas(sample, view, seed, config)
        embeddings.append(segmenter.embed([canvas])[0].features[0].to(torch.float16))
        labels.append(torch.as_tensor(canvas_labels.astype(np.int16)))
        if progress:
            progress(done, len(samples))
    encoded = EncodedViews(torch.stack(embeddings), torch.stack(labels), dict(samples[0].names),
                           [(s.case_id, s.index, view) for s in samples])
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".tmp")
        torch.save({"embeddings": encoded.embeddings, "labels": encoded.labels,
                    "names": {str(k): v for k, v in encoded.names.items()}, "slices": encoded.slices}, str(partial))
        partial.replace(path)
    return encoded
