"""Which models a run uses, in one frozen dataclass with one set of defaults, and how they are built.

Every entry point (CLI verbs, the demo, benchmarks) describes its models with a `ModelOptions`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ModelOptions:
    """Which segmenter, encoder runtime, detector and device; where embeddings are kept."""

    segmenter: str = "litemedsam"
    weights: str | None = None
    runtime: str = "auto"
    detector: str = "auto"
    detector_weights: str | None = None
    device: str = "cpu"
    cache_dir: Path | None = None

    def encoder_runtime(self) -> str:
        """The engine the segmenter's image encoder will run on (`auto` resolved; torch for every non-LiteMedSAM model)."""
        from limis.segment.runtime import choose_runtime

        return choose_runtime(self.runtime, self.device) if self.segmenter == "litemedsam" else "torch"

    def build_segmenter(self):
        from limis.segment.builders import build_segmenter

        return build_segmenter(self.segmenter, self.weights, self.device, runtime=self.runtime)

    def build_cache(self, segmenter=None):
        """An embedding cache over `segmenter` (built from these options when not given), on disk if `cache_dir`."""
        from limis.segment.cache import EmbeddingCache

        return EmbeddingCache(segmenter or self.build_segmenter(), disk_dir=self.cache_dir)

    def build_detector(self, volume, cache, labels: Path | None = None, label_map: Path | None = None):
        from limis.pipeline.registry import build_detector

        return build_detector(self.detector, volume=volume, weights=self.detector_weights, labels=labels,
                              label_map=label_map, device=self.device, embeddings=cache)
