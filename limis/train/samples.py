"""2D training samples from 3D labelmaps: displayed slices with their labels and boxes with canonical names.

A `SliceSample` keeps the raw slice values (HU for CT) and its label slice in the radiological
display convention, so an augmentation (`limis.train.augment`) re-windows and re-boxes from the
transformed labels. Left and right in names always mean the patient's side.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from limis.imaging.display import Plane, Window, display_slice, slice_count
from limis.imaging.slice_image import Box, box_from_mask
from limis.imaging.volume import Volume

MIN_STRUCTURE_MM2 = 25.0  # smaller cross-sections are not boxed (partial-volume specks)


@dataclass(frozen=True)
class StructureBox:
    """One present structure on a sample: canonical name, the patient side it lies on, XYXY pixels."""

    structure: str
    laterality: str | None
    box: Box


@dataclass(frozen=True)
class SliceSample:
    """One displayed slice with its labels.

    `values` (rows, cols) float32 raw intensities; `labels` (rows, cols) int32 label ids whose
    canonical names are `names`; `pixel_mm` (row, col) spacing; `window` maps values to [0, 1].
    """

    case_id: str
    patient: str
    plane: Plane
    index: int
    values: np.ndarray
    labels: np.ndarray
    names: dict[int, str]
    pixel_mm: tuple[float, float]
    window: Window
    modality: str  # the volume's ("CT", "MR", "OT")
    flipped: bool = False

    @property
    def pixels(self) -> np.ndarray:
        """The windowed slice, float32 in [0, 1] (what detectors see)."""
        return self.window.apply(self.values)

    def structure_mask(self, structure: str) -> np.ndarray:
        ids = [i for i, name in self.names.items() if name == structure]
        return np.isin(self.labels, ids)

    def boxes(self, min_mm2: float = MIN_STRUCTURE_MM2) -> list[StructureBox]:
        """A box per present structure (tight around all its pixels), largest structures first."""
        from limis.vocab import get_structure

        area_mm2 = self.pixel_mm[0] * self.pixel_mm[1]
        counts = np.bincount(self.labels.ravel(), minlength=max(self.names, default=0) + 1)
        found = []
        for label_id, name in self.names.items():
            if label_id < len(counts) and counts[label_id] * area_mm2 >= min_mm2:
                box = box_from_mask(self.labels == label_id)
                found.append((counts[label_id], StructureBox(name, _laterality(name, get_structure), box)))
        return [entry for _, entry in sorted(found, key=lambda pair: -pair[0])]


def _laterality(name: str, get_structure) -> str | None:
    try:
        return get_structure(name).laterality
    except Exception:  # a dataset label outside the vocabulary has no known side
        return None


def volume_samples(
    volume: Volume,
    labels: np.ndarray,
    names: dict[int, str],
    window: Window,
    *,
    case_id: str,
    patient: str,
    plane: Plane = Plane.AXIAL,
    only_labelled: bool = True,
) -> Iterator[SliceSample]:
    """Every displayed slice of a canonical volume (and its canonical labelmap) as a sample."""
    from limis.imaging.display import SliceGeometry

    for index in range(slice_count(volume.shape, plane)):
        label_view = display_slice(labels, plane, index).astype(np.int32)
        if only_labelled and not label_view.any():
            continue
        geometry = SliceGeometry(volume.shape, volume.affine, plane, index)
        yield SliceSample(case_id, patient, Plane(plane), index, display_slice(volume.array, plane, index).astype(np.float32),
                          label_view, dict(names), geometry.pixel_spacing_mm, window, volume.modality)


def manifest_samples(manifest, split: str, window: Window | None = None, plane: Plane = Plane.AXIAL) -> Iterator[SliceSample]:
    """Samples of every case in one patient-level split of an evaluation manifest."""
    from limis.eval.cases import load_case
    from limis.pipeline.slices import choose_window

    for case in manifest.split(split):
        volume, labels, names = load_case(case, manifest)
        yield from volume_samples(volume, labels, names, window or choose_window(volume), case_id=case.case_id,
                                  patient=case.patient, plane=plane)
