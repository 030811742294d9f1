"""Load one manifest case as (volume, reference labels on its canonical grid, label names)."""

from __future__ import annotations

import numpy as np

from limis.eval.datasets import Case, Manifest
from limis.imaging import load_image
from limis.imaging.align import load_labelmap_on
from limis.imaging.readers import override_modality
from limis.imaging.volume import Volume


def load_case(case: Case, manifest: Manifest) -> tuple[Volume, np.ndarray, dict[int, str]]:
    """The image, its reference labelmap (canonical, int32) and id -> canonical name.

    The manifest's `modality` replaces an intensity-based guess (NIfTI); modalities read from a
    DICOM header and 2D pictures keep theirs.
    """
    volume = load_image(case.image, view=case.view)
    if manifest.modality and volume.metadata.get("modality_guessed"):
        volume = override_modality(volume, manifest.modality)
    if case.labels is not None:
        return volume, load_labelmap_on(volume, case.labels), dict(manifest.label_names)
    from PIL import Image

    labels = np.zeros(volume.shape, dtype=np.int32)
    ids = {name: label_id for label_id, name in manifest.label_names.items()}
    for structure, files in case.masks.items():
        if structure not in ids:
            continue
        union = np.zeros(volume.source_shape[:2], dtype=bool)
        for file in files:
            union |= np.asarray(Image.open(file).convert("L")).T > 0  # (columns, rows), like the image
        canonical = volume.from_source(union[:, :, None].astype(np.uint8)) > 0
        labels[canonical & (labels == 0)] = ids[structure]
    return volume, labels, dict(manifest.label_names)


def present_structures(labels: np.ndarray, names: dict[int, str], wanted: list[str] | None) -> list[str]:
    """Structures with any reference voxel (their own label or a part's), restricted to `wanted` when given."""
    from limis.vocab import label_ids

    found = set(np.unique(labels).tolist())
    if not wanted:
        return sorted({names[i] for i in found if i in names})
    return [s for s in wanted if found.intersection(label_ids(s, names))]
