"""The trunk on a displayed slice: its extent, and a pixel size for pictures that carry none.

One definition of "the body" for every consumer (detector coordinates, box prior, the patient's
midline for left/right): the largest non-air component after an opening, so the scanner table
and an arm held beside the body do not move it.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

# Windowed intensity above which a pixel is tissue. In the CT abdomen window (W 400, L 40) this is
# -112 HU: above air and above the -125 HU floor of CTs exported clipped to [-125, 275] (BTCV),
# below subcutaneous fat's usual -100 HU. MR and pictures are percentile-windowed: background ~0.
BODY_LEVEL = 0.12
# Trunk width (left-right, mm) used to guess the pixel size of pictures without spacing (PNG):
# the median over the shared TotalSegmentator example scan's slices (345 mm).
TYPICAL_TRUNK_WIDTH_MM = 345.0

Extent = tuple[float, float, float, float]  # row0, col0, row1, col1 (inclusive pixel indices)


def body_extent(pixels: np.ndarray) -> Extent:
    """(row0, col0, row1, col1) of the trunk on a windowed (rows, cols) slice; the whole image if none is found."""
    body = ndimage.binary_opening(pixels > BODY_LEVEL, iterations=2)
    labelled, count = ndimage.label(body)
    if count == 0:
        return 0.0, 0.0, pixels.shape[0] - 1.0, pixels.shape[1] - 1.0
    sizes = np.bincount(labelled.ravel())
    sizes[0] = 0
    trunk = labelled == int(np.argmax(sizes))
    rr, cc = np.flatnonzero(trunk.any(axis=1)), np.flatnonzero(trunk.any(axis=0))
    return float(rr[0]), float(cc[0]), float(rr[-1]), float(cc[-1])


def estimated_pixel_mm(pixels: np.ndarray) -> tuple[float, float]:
    """(row, col) pixel size of a picture without spacing, assuming an adult trunk width; square pixels."""
    _, c0, _, c1 = body_extent(pixels)
    mm = TYPICAL_TRUNK_WIDTH_MM / max(c1 - c0, 1.0)
    return mm, mm
