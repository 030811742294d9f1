"""Physical-size canvas: a displayed slice resampled to fixed mm per pixel and centred on the body.

LiteMedSAM's encoder sees a 256 x 256 image. Resizing whole slices to 256 makes a 3 mm pixel
scan and a 0.98 mm pixel scan look like different anatomy sizes, which is why a detector trained
on one scan found nothing on the other. The canvas fixes the physical pixel size (3 mm by
default: 768 mm across) and puts the body's centre in the canvas centre, so anatomy has the same
size and roughly the same place on every scan.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from limis.detect.base import Box

CANVAS_SIZE = 256
CANVAS_MM = 3.0
BODY_LEVEL = 0.05  # windowed intensity above air
# Trunk width (left-right, mm) used to guess the pixel size of pictures that carry none (PNG):
# the median over the shared training scan's slices (345 mm; the unseen DICOM scan measures 348 mm).
TYPICAL_TRUNK_WIDTH_MM = 345.0


@dataclass(frozen=True)
class CanvasMap:
    """Affine map between display pixels (row, col) and canvas pixels: canvas = display * scale + offset."""

    scale: tuple[float, float]
    offset: tuple[float, float]
    mm_per_pixel: float
    body: tuple[float, float, float, float]  # body extent on the canvas: row0, col0, row1, col1

    def to_display(self, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (rows - self.offset[0]) / self.scale[0], (cols - self.offset[1]) / self.scale[1]

    def box_to_display(self, box: Box, shape: tuple[int, int]) -> Box:
        """Canvas XYXY box -> display XYXY box clipped to a (rows, cols) slice."""
        r0, c0 = self.to_display(np.float64(box[1]), np.float64(box[0]))
        r1, c1 = self.to_display(np.float64(box[3]), np.float64(box[2]))
        rows, cols = shape
        return (float(np.clip(c0, 0, cols - 1)), float(np.clip(r0, 0, rows - 1)),
                float(np.clip(c1, 0, cols - 1)), float(np.clip(r1, 0, rows - 1)))


def make_canvas(
    pixels: np.ndarray,
    pixel_mm: tuple[float, float],
    mm_per_pixel: float = CANVAS_MM,
    size: int = CANVAS_SIZE,
    shift: tuple[float, float] = (0.0, 0.0),
) -> tuple[np.ndarray, CanvasMap]:
    """(size, size) float32 canvas of a windowed slice (rows, cols in [0, 1]) and its map.

    `pixel_mm` is the slice's (row, col) spacing; a field of view wider than the canvas is
    shrunk to fit (recorded in `mm_per_pixel`). `shift` moves the body off-centre (augmentation).
    """
    rows, cols = pixels.shape
    extent = max(rows * pixel_mm[0], cols * pixel_mm[1])
    mm = max(mm_per_pixel, extent / size)
    shape = (max(1, int(round(rows * pixel_mm[0] / mm))), max(1, int(round(cols * pixel_mm[1] / mm))))
    image = torch.as_tensor(np.ascontiguousarray(pixels, dtype=np.float32))[None, None]
    resized = F.interpolate(image, size=shape, mode="bilinear", align_corners=False, antialias=True)[0, 0].numpy()
    extent_box = body_extent(resized)
    centre = ((extent_box[0] + extent_box[2]) / 2.0, (extent_box[1] + extent_box[3]) / 2.0)
    top = int(round((size - 1) / 2.0 - centre[0] + shift[0]))
    left = int(round((size - 1) / 2.0 - centre[1] + shift[1]))
    canvas = np.zeros((size, size), dtype=np.float32)
    _paste(canvas, resized, top, left)
    scale = (shape[0] / rows, shape[1] / cols)
    # pixel centres: display index i covers [i, i+1) -> resized (i + 0.5) * s - 0.5
    offset = (0.5 * scale[0] - 0.5 + top, 0.5 * scale[1] - 0.5 + left)
    body_box = (extent_box[0] + top, extent_box[1] + left, extent_box[2] + top, extent_box[3] + left)
    return canvas, CanvasMap(scale, offset, mm, body_box)


def body_extent(pixels: np.ndarray) -> tuple[float, float, float, float]:
    """(row0, col0, row1, col1) of the trunk: the largest non-air component after an opening,
    so the table and separate arms do not move the centre. The whole image if nothing is found."""
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


def labels_on_canvas(labels: np.ndarray, canvas_map: CanvasMap, size: int = CANVAS_SIZE) -> np.ndarray:
    """A display label slice (rows, cols) on the canvas grid, nearest neighbour, 0 outside."""
    grid = np.arange(size, dtype=np.float64)
    rows, cols = canvas_map.to_display(grid, grid)
    r = np.rint(rows).astype(int)
    c = np.rint(cols).astype(int)
    inside_r = (r >= 0) & (r < labels.shape[0])
    inside_c = (c >= 0) & (c < labels.shape[1])
    out = np.zeros((size, size), dtype=labels.dtype)
    out[np.ix_(inside_r, inside_c)] = labels[np.ix_(r[inside_r], c[inside_c])]
    return out


def _paste(canvas: np.ndarray, image: np.ndarray, top: int, left: int) -> None:
    size_r, size_c = canvas.shape
    r0, c0 = max(0, top), max(0, left)
    r1, c1 = min(size_r, top + image.shape[0]), min(size_c, left + image.shape[1])
    if r1 > r0 and c1 > c0:
        canvas[r0:r1, c0:c1] = image[r0 - top : r1 - top, c0 - left : c1 - left]
