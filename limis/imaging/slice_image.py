"""A displayed slice as models see it, and boxes on it: the types detectors and segmenters share."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from limis.imaging.display import SliceGeometry, Window

Box = tuple[float, float, float, float]  # XYXY in pixels of the displayed slice: x = column, y = row


@dataclass(frozen=True)
class SliceImage:
    """One displayed (radiological) slice as models see it.

    `pixels` is float32 (rows, cols) in [0, 1] after `window`; `geometry` maps its pixels to
    canonical voxels and patient millimetres; `key` identifies (volume, plane, slice, window)
    for embedding caches; `modality` is the volume's ("CT", "MR", "OT"). `spacing_known` is False for
    2D pictures (PNG/JPEG) whose pixel size was assumed, not read.
    """

    pixels: np.ndarray
    geometry: SliceGeometry
    window: Window
    key: tuple
    modality: str
    spacing_known: bool = True


def box_from_mask(mask: np.ndarray) -> Box | None:
    """Tight XYXY box (pixel centres of the extreme foreground pixels) of a 2D mask, None if empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return float(cols[0]), float(rows[0]), float(cols[-1]), float(rows[-1])
