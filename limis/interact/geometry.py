"""Box and point arithmetic on a displayed slice, with patient directions taken from the geometry."""

from __future__ import annotations

import numpy as np

from limis.imaging.display import SliceGeometry
from limis.imaging.slice_image import Box

SCREEN_WORDS = {"up": (-1, 0), "down": (1, 0)}


def clip_box(box: Box, shape: tuple[int, int]) -> Box:
    rows, cols = shape
    x0, y0, x1, y1 = box
    x0, x1 = sorted((float(np.clip(x0, 0, cols - 1)), float(np.clip(x1, 0, cols - 1))))
    y0, y1 = sorted((float(np.clip(y0, 0, rows - 1)), float(np.clip(y1, 0, rows - 1))))
    return x0, y0, x1, y1


def scale_box(box: Box, factor: float, shape: tuple[int, int]) -> Box:
    """Scale width and height by `factor` about the centre."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    hw, hh = (box[2] - box[0]) / 2 * factor, (box[3] - box[1]) / 2 * factor
    return clip_box((cx - hw, cy - hh, cx + hw, cy + hh), shape)


def screen_step(direction: str, geometry: SliceGeometry) -> tuple[int, int] | None:
    """(d_row, d_col) on screen for a patient direction (left/right/anterior/...) or screen up/down."""
    if direction in SCREEN_WORDS:
        return SCREEN_WORDS[direction]
    return geometry.screen_direction(direction)


def move_box(box: Box, step: tuple[int, int], amount: float, unit: str, geometry: SliceGeometry) -> Box:
    """Shift a box `amount` mm (or px) along a screen step."""
    row_mm, col_mm = geometry.pixel_spacing_mm
    d_row = step[0] * (amount / row_mm if unit == "mm" else amount)
    d_col = step[1] * (amount / col_mm if unit == "mm" else amount)
    return clip_box((box[0] + d_col, box[1] + d_row, box[2] + d_col, box[3] + d_row), geometry.display_shape)


def move_edge(box: Box, step: tuple[int, int], amount_mm: float, geometry: SliceGeometry) -> Box:
    """Move the edge that faces `step` outward by `amount_mm` (inward when negative)."""
    row_mm, col_mm = geometry.pixel_spacing_mm
    x0, y0, x1, y1 = box
    if step[1] > 0:
        x1 += amount_mm / col_mm
    elif step[1] < 0:
        x0 -= amount_mm / col_mm
    elif step[0] > 0:
        y1 += amount_mm / row_mm
    else:
        y0 -= amount_mm / row_mm
    return clip_box((x0, y0, x1, y1), geometry.display_shape)


def region_fractions(region: tuple[str, ...], geometry: SliceGeometry) -> tuple[float, float]:
    """(fx, fy) inside a box for a region named in patient terms (top/bottom are screen terms)."""
    fx = fy = 0.5
    for word in region:
        if word in ("top", "bottom"):
            fy = 0.2 if word == "top" else 0.8
        else:
            step = geometry.screen_direction(word)
            if step is None or step[1] == 0:
                continue
            fx = 0.8 if step[1] > 0 else 0.2
    return fx, fy


def choose_point(region: tuple[str, ...], positive: bool, box: Box, mask: np.ndarray | None,
                 pixels: np.ndarray, geometry: SliceGeometry) -> tuple[float, float]:
    """(x, y) display pixel for a point in a named region.

    Include: inside the box's region, outside the current mask, at the pixel most like the mask's
    tissue (closest to the region anchor among the most similar). Exclude: the mask pixel deepest
    in that region. Falls back to the region anchor.
    """
    fx, fy = region_fractions(region, geometry)
    anchor = (box[0] + fx * (box[2] - box[0]), box[1] + fy * (box[3] - box[1]))
    rows, cols = np.mgrid[0 : pixels.shape[0], 0 : pixels.shape[1]]
    distance = np.hypot(cols - anchor[0], rows - anchor[1])
    inside_box = (cols >= box[0]) & (cols <= box[2]) & (rows >= box[1]) & (rows <= box[3])
    near = distance <= 0.3 * max(box[2] - box[0], box[3] - box[1], 2.0)
    has_mask = mask is not None and mask.any()
    if positive:
        allowed = inside_box & near & (~mask if has_mask else True)
        if not allowed.any():
            return anchor
        tissue = float(np.median(pixels[mask])) if has_mask else float(np.median(pixels[inside_box]))
        cost = np.abs(pixels - tissue) * 10.0 + distance / max(pixels.shape)
    else:
        allowed = (mask & near) if has_mask else inside_box & near
        if not allowed.any():
            return anchor
        cost = distance
    cost = np.where(allowed, cost, np.inf)
    row, col = np.unravel_index(int(np.argmin(cost)), cost.shape)
    return float(col), float(row)
