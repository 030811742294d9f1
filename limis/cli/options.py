"""Model options declared once: every verb that builds models takes these, with one help text and one default.

A verb declares `segmenter: SegmenterOption = DEFAULTS.segmenter` (and so on) and turns what it
received into one `ModelOptions`, which builds the models. Defaults live only in `ModelOptions`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Optional

import typer


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

    def build_segmenter(self):
        from limis.segment.builders import build_segmenter

        return build_segmenter(self.segmenter, self.weights, self.device, runtime=self.runtime)

    def build_cache(self, segmenter=None):
        """An embedding cache over `segmenter` (built from these options when not given), on disk if `cache_dir`."""
        from limis.segment.cache import EmbeddingCache

        return EmbeddingCache(segmenter or self.build_segmenter(), disk_dir=self.cache_dir)

    def build_detector(self, volume, cache, labels: Path | None = None, label_map: Path | None = None):
        from limis.detect.registry import build_detector

        return build_detector(self.detector, volume=volume, weights=self.detector_weights, labels=labels,
                              label_map=label_map, device=self.device, embeddings=cache)


DEFAULTS = ModelOptions()

SegmenterOption = Annotated[str, typer.Option("--segmenter", help="litemedsam | medsam_vit_b | sam_vit_b/l/h | hf-sam.")]
WeightsOption = Annotated[Optional[str], typer.Option(
    "--weights", help="Segmenter checkpoint file or folder (default: the shipped LiteMedSAM).")]
RuntimeOption = Annotated[str, typer.Option(
    "--runtime", help="LiteMedSAM image-encoder engine: auto (onnxruntime on CPU when installed, else torch) | torch | "
    "onnxruntime. Same embeddings within 4e-6.")]
DetectorOption = Annotated[str, typer.Option(
    "--detector", help="auto (Grounding DINO if its weights are local, else lite-grounding) | lite-grounding | "
    "grounding-dino | oracle (boxes from --labels).")]
DetectorWeightsOption = Annotated[Optional[str], typer.Option(
    "--detector-weights", help="Grounding DINO folder or hub id, or a lite-grounding .safetensors head (default: shipped).")]
DeviceOption = Annotated[str, typer.Option("--device", help="cpu, cuda, cuda:1, ...")]
CacheDirOption = Annotated[Optional[Path], typer.Option(
    "--cache-dir", envvar="LIMIS_EMBEDDING_CACHE", help="Keep slice embeddings here so later runs on the same image skip encoding.")]
ModalityOption = Annotated[Optional[str], typer.Option(
    "--modality", help="CT | MR | XR | OT: overrides the guess from intensities (a CT clipped to [-125, 275] HU has no "
    "air and is guessed MR).")]
