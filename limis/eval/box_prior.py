"""The trivial baseline a learned detector must beat: structure boxes in body-normalised coordinates.

Fitted on training slices: each structure's box relative to the trunk's extent on the displayed
slice (median over slices where it is present). On a new slice the box is placed relative to
that slice's trunk. It always answers "present" (score 1), so it knows nothing about z-range.
"""

from __future__ import annotations

from typing import Iterable, Protocol, Sequence

import numpy as np

from limis.detect.base import Detection, Detector, DetectorTraits
from limis.detect.body import body_extent
from limis.imaging.slice_image import Box, SliceImage


class NamedBox(Protocol):
    structure: str
    box: Box  # XYXY display pixels


class LabelledSlice(Protocol):
    """A training slice (e.g. `limis.train.samples.SliceSample`): displayed pixels and its reference boxes."""

    pixels: np.ndarray  # (rows, cols) float32 in [0, 1], radiological display

    def boxes(self) -> Iterable[NamedBox]:
        """One box per present structure."""
        ...


def _normalise(box: Box, body: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    r0, c0, r1, c1 = body
    width, height = max(c1 - c0, 1.0), max(r1 - r0, 1.0)
    return (box[0] - c0) / width, (box[1] - r0) / height, (box[2] - c0) / width, (box[3] - r0) / height


class BoxPriorDetector(Detector):
    """Detector backend answering every structure with its typical body-relative box."""

    name = "box-prior"
    traits = DetectorTraits(understands_laterality=True)  # boxes live in the radiological display, anchored to the patient

    def __init__(self, boxes: dict[str, tuple[float, float, float, float]]) -> None:
        self.boxes = boxes

    @classmethod
    def fit(cls, samples: Iterable[LabelledSlice]) -> "BoxPriorDetector":
        seen: dict[str, list[tuple[float, float, float, float]]] = {}
        for sample in samples:
            body = body_extent(sample.pixels)
            for found in sample.boxes():
                seen.setdefault(found.structure, []).append(_normalise(found.box, body))
        return cls({name: tuple(float(v) for v in np.median(np.asarray(boxes), axis=0)) for name, boxes in seen.items()})

    def detect(self, image: SliceImage, structures: Sequence[str]) -> list[Detection]:
        r0, c0, r1, c1 = body_extent(image.pixels)
        width, height = c1 - c0, r1 - r0
        found = []
        for structure in structures:
            if structure in self.boxes:
                x0, y0, x1, y1 = self.boxes[structure]
                box = (c0 + x0 * width, r0 + y0 * height, c0 + x1 * width, r0 + y1 * height)
                found.append(Detection(structure, box, 1.0, structure))
        return found
