"""Oracle and manual detectors: boxes from a reference labelmap, or boxes the user drew."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from limis.detect.base import Detection, Detector, DetectorTraits
from limis.imaging.display import display_slice
from limis.imaging.slice_image import Box, SliceImage, box_from_mask


class OracleDetector(Detector):
    """Tight boxes of reference structures: the box-prompt upper bound of SAM-for-medicine papers.

    `labels` must already lie on the image's canonical grid (see `limis.imaging.align`), so
    reference files stored in another orientation are aligned by affine, never by array index.
    """

    name = "oracle"
    traits = DetectorTraits(understands_laterality=True, dense_boxes=True)  # a box on every slice it covers

    def __init__(self, labels: np.ndarray, names: dict[int, str]) -> None:
        self.labels = labels
        self.names = {int(label_id): name for label_id, name in names.items()}

    def ids(self, structure: str) -> list[int]:
        """The reference labels of a structure, or of its parts (a whole lung from its lobes)."""
        from limis.vocab import label_ids

        return label_ids(structure, self.names)

    def present_structures(self) -> set[str]:
        present = set(np.unique(self.labels).tolist())
        return {name for label_id, name in self.names.items() if label_id in present}

    def detect(self, image: SliceImage, structures: Sequence[str]) -> list[Detection]:
        geometry = image.geometry
        labels = display_slice(self.labels, geometry.plane, geometry.index)
        found = []
        for structure in structures:
            ids = self.ids(structure)
            box = box_from_mask(np.isin(labels, ids)) if ids else None
            if box is not None:
                found.append(Detection(structure, box, 1.0, structure))
        return found

    def candidate_slices(self, structure: str, plane_axis: int) -> np.ndarray:
        """Canonical indices along `plane_axis` where the structure has any voxel."""
        mask = np.isin(self.labels, self.ids(structure))
        other = tuple(a for a in range(3) if a != plane_axis)
        return np.flatnonzero(mask.any(axis=other))


class ManualDetector(Detector):
    """Boxes a user drew: {structure: {slice index: [boxes]}} on the plane being segmented."""

    name = "manual"
    traits = DetectorTraits(understands_laterality=True)

    def __init__(self, boxes: dict[str, dict[int, list[Box]]]) -> None:
        self.boxes = boxes

    def candidate_slices(self, structure: str, plane_axis: int) -> np.ndarray:
        """The slices the user drew on (the plane is the one being segmented)."""
        return np.asarray(sorted(self.boxes.get(structure, {})), dtype=int)

    def detect(self, image: SliceImage, structures: Sequence[str]) -> list[Detection]:
        index = image.geometry.index
        return [
            Detection(structure, tuple(float(v) for v in box), 1.0, structure)  # type: ignore[arg-type]
            for structure in structures
            for box in self.boxes.get(structure, {}).get(index, [])
        ]
