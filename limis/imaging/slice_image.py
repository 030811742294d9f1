"""A displayed slice as models see it, and boxes on it: the types detectors and segmenters share."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from limis.imaging.display import SliceGeometry, Window, slice_count

Box = tuple[float, float, float, float]  # XYXY in pixels of the displayed slice: x = column, y = row


@dataclass(frozen=True)
class SliceImage:
    """One displayed (radiological) slice as models see it.

    `pixels` is float32 (rows, cols) in [0, 1] after `window`; `geometry` maps its pixels to
    canonical voxels and patient millimetres; `key` identifies (volume, plane, slice, window)
    for embedding caches; `modality` is the volume's ("CT", "MR", "OT"). `spacing_known` is False for
    2D pictures (PNG/JPEG) whose pixel size was assumed, not read. `slice_at` makes the slice of another
    index along the same plane of the same volume, same window (None: a slice without its volume).
    """

    pixels: np.ndarray
    geometry: SliceGeometry
    window: Window
    key: tuple
    modality: str
    spacing_known: bool = True
    slice_at: Callable[[int], "SliceImage"] | None = field(default=None, compare=False, repr=False)

    def neighbour(self, offset: int) -> "SliceImage":
        """The slice `offset` steps along the plane (+1: the next canonical index), clamped to the volume's first and
        last slice; the slice itself where it has no volume."""
        last = slice_count(self.geometry.shape, self.geometry.plane) - 1
        index = min(max(self.geometry.index + offset, 0), last)
        if self.slice_at is None or index == self.geometry.index:
            return self
        return self.slice_at(index)


def box_from_mask(mask: np.ndarray) -> Box | None:
    """Tight XYXY box (pixel centres of the extreme foreground pixels) of a 2D mask, None if empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return float(cols[0]), float(rows[0]), float(cols[-1]), float(rows[-1])
