"""The Detector contract: (displayed slice, structures) -> boxes with scores, and what the pipeline may assume."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from limis.imaging.slice_image import Box, SliceImage


@dataclass(frozen=True)
class Detection:
    """A box answering one canonical structure; `phrase` is the text the detector was given."""

    structure: str
    box: Box
    score: float
    phrase: str


@dataclass(frozen=True)
class DetectorTraits:
    """What the pipeline may assume about a detector's boxes; defaults describe a plain box detector.

    `understands_laterality`: it answers "kidney_left" itself (else the pipeline asks for "kidney"
    and picks the patient's side from geometry). `dense_boxes`: a box on every slice the structure
    covers, so nothing is propagated past them (the oracle). `coarse_boxes`: boxes from a coarse
    heatmap, which the pipeline grows on the sides the mask runs into. `reads_embeddings`: it reads the
    segmenter's slice embeddings from the pipeline's cache (so the pipeline may encode them first).
    """

    understands_laterality: bool = False
    dense_boxes: bool = False
    coarse_boxes: bool = False
    reads_embeddings: bool = False


class Detector(ABC):
    """Finds boxes for canonical structure names on displayed slices.

    A backend sets `name` and `traits` and implements `detect`; `detect_batch` loops over `detect`
    unless the backend batches model calls, `slices_read` is the images themselves unless the backend also reads
    neighbouring slices, `candidate_slices` is None (search every n-th
    slice) unless the backend knows where a structure lies, `support` is None unless the
    backend has a per-pixel map of where the structure is, `refusal` is None unless the backend
    declines some structures on some modalities, and `caveat` is None unless it knows a way its
    answers for a structure go wrong.
    """

    name: str
    traits: DetectorTraits = DetectorTraits()

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if not isinstance(cls.traits, DetectorTraits):
            raise TypeError(f"{cls.__name__}.traits must be a DetectorTraits, not {type(cls.traits).__name__}")

    @abstractmethod
    def detect(self, image: SliceImage, structures: Sequence[str]) -> list[Detection]:
        """All boxes found, any number per structure (e.g. both kidneys for 'kidney'), best first."""

    def detect_batch(self, images: Sequence[SliceImage], structures: Sequence[str]) -> list[list[Detection]]:
        """`detect` for each image, in order."""
        return [self.detect(image, structures) for image in images]

    def slices_read(self, images: Sequence[SliceImage]) -> list[SliceImage]:
        """Every slice whose input (e.g. embedding) answering on `images` reads, each once: what the pipeline may
        encode ahead for an embedding-reading detector."""
        return list({image.key: image for image in images}.values())

    def candidate_slices(self, structure: str, plane_axis: int) -> np.ndarray | None:
        """Indices along canonical `plane_axis` where the structure lies, or None when unknown."""
        return None

    def refusal(self, structure: str, modality: str) -> str | None:
        """Why this detector never reports `structure` on images of `modality` (so "not found" says nothing
        about the image), or None when it looks for it."""
        return None

    def caveat(self, structure: str, modality: str) -> str | None:
        """What a mask of `structure` found by this detector on `modality` may get wrong, measured on patients it
        never trained on (e.g. claimed on volumes without the structure), or None when nothing is known."""
        return None

    def support(self, images: Sequence[SliceImage], structure: str) -> list[np.ndarray] | None:
        """Per image a (rows, cols) float map of the structure's probability on the displayed slice, or
        None when the detector draws boxes only (the pipeline then keeps the segmenter's masks as they are)."""
        return None
