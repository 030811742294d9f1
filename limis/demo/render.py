"""Draw what the viewer shows: the windowed slice with mask overlays, boxes, orientation letters,
plus the legend and the structure table.

Frames: a displayed slice is (rows, cols) in radiological display pixels (see
`limis.imaging.display`); the screen picture is that slice enlarged to about `SCREEN_SIDE_PX`
with the true millimetre aspect ratio, so a click at screen (x, y) maps back to slice pixels
through `Picture.to_slice`.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy.ndimage import binary_erosion

from limis.imaging.display import SliceGeometry
from limis.imaging.export import label_color
from limis.imaging.slice_image import Box

SCREEN_SIDE_PX = 512
FILL_ALPHA = 0.35
CONTOUR_PX = 2
BOX_COLOR = (255, 215, 0)
CLICK_COLOR = (255, 0, 255)
LETTER_PX = 22
PATIENT_LETTERS = {"right": "R", "left": "L", "anterior": "A", "posterior": "P", "superior": "S", "inferior": "I"}
SCREEN_EDGES = {"left": (0, -1), "right": (0, 1), "top": (-1, 0), "bottom": (1, 0)}


@dataclass(frozen=True)
class Layer:
    """One structure on the current slice: boolean mask (rows, cols) and XYXY box, both display pixels."""

    name: str
    display: str
    label_id: int
    mask: np.ndarray | None
    box: Box | None


@dataclass(frozen=True)
class Picture:
    """uint8 RGB (H, W, 3) screen picture and its scale: screen pixels per slice row / column."""

    rgb: np.ndarray
    row_scale: float
    col_scale: float

    def to_slice(self, x: float, y: float) -> tuple[float, float]:
        """Screen click (x right, y down, picture pixels) -> display slice (x = column, y = row)."""
        return x / self.col_scale, y / self.row_scale


def screen_shape(shape: tuple[int, int], spacing_mm: tuple[float, float]) -> tuple[int, int]:
    """(H, W) of the screen picture for a (rows, cols) slice with (row, col) pixel spacing in mm."""
    height_mm, width_mm = shape[0] * spacing_mm[0], shape[1] * spacing_mm[1]
    per_mm = SCREEN_SIDE_PX / max(height_mm, width_mm)
    return max(1, round(height_mm * per_mm)), max(1, round(width_mm * per_mm))


def edge_letters(geometry: SliceGeometry) -> dict[str, str]:
    """Patient-direction letters for each screen edge, e.g. axial radiological: left 'R', top 'A'.

    Derived from the slice affine via `screen_direction`, so every file orientation is right;
    an oblique slice puts two letters on an edge (e.g. 'RA').
    """
    letters = {edge: "" for edge in SCREEN_EDGES}
    for direction, letter in PATIENT_LETTERS.items():
        step = geometry.screen_direction(direction)
        if step is None:
            continue
        for edge, (d_row, d_col) in SCREEN_EDGES.items():
            if (d_row and step[0] == d_row) or (d_col and step[1] == d_col):
                letters[edge] += letter
    return letters


def render_view(grey_rgb: np.ndarray, geometry: SliceGeometry, layers: list[Layer], active: str | None,
                pending: tuple[float, float] | None = None) -> Picture:
    """Screen picture of a windowed slice (uint8 RGB (rows, cols, 3)) with overlays and markers.

    Masks are filled at `FILL_ALPHA` and outlined in the exact `label_color` of their label id;
    the active structure's box is drawn in `BOX_COLOR`; `pending` is a first box corner (x, y)
    in slice pixels.
    """
    rows, cols = grey_rgb.shape[:2]
    height, width = screen_shape((rows, cols), geometry.pixel_spacing_mm)
    picture = Picture(np.asarray(Image.fromarray(grey_rgb).resize((width, height), Image.BILINEAR)).copy(),
                      height / rows, width / cols)
    row_index = np.minimum(((np.arange(height) + 0.5) / picture.row_scale).astype(int), rows - 1)
    col_index = np.minimum(((np.arange(width) + 0.5) / picture.col_scale).astype(int), cols - 1)
    for layer in layers:
        if layer.mask is not None and layer.mask.any():
            _paint_mask(picture.rgb, layer.mask[np.ix_(row_index, col_index)], label_color(layer.label_id))
    image = Image.fromarray(picture.rgb)
    draw = ImageDraw.Draw(image)
    for layer in layers:
        if layer.name == active and layer.box is not None:
            x0, y0, x1, y1 = layer.box
            draw.rectangle([x0 * picture.col_scale, y0 * picture.row_scale,
                            (x1 + 1) * picture.col_scale - 1, (y1 + 1) * picture.row_scale - 1], outline=BOX_COLOR)
    if pending is not None:
        _draw_cross(draw, pending[0] * picture.col_scale, pending[1] * picture.row_scale)
    _draw_letters(draw, edge_letters(geometry), width, height)
    return Picture(np.asarray(image), picture.row_scale, picture.col_scale)


def _paint_mask(rgb: np.ndarray, mask: np.ndarray, color: tuple[int, int, int]) -> None:
    """Blend the mask interior with `color` and paint its outline in exactly `color` (in place)."""
    outline = mask & ~binary_erosion(mask, iterations=CONTOUR_PX, border_value=0)
    inside = mask & ~outline
    tint = np.asarray(color, dtype=np.float32)
    rgb[inside] = (rgb[inside] * (1.0 - FILL_ALPHA) + tint * FILL_ALPHA + 0.5).astype(np.uint8)
    rgb[outline] = color


def _draw_cross(draw: ImageDraw.ImageDraw, x: float, y: float, arm: float = 6.0) -> None:
    draw.line([x - arm, y, x + arm, y], fill=CLICK_COLOR, width=2)
    draw.line([x, y - arm, x, y + arm], fill=CLICK_COLOR, width=2)


def _draw_letters(draw: ImageDraw.ImageDraw, letters: dict[str, str], width: int, height: int) -> None:
    font = ImageFont.load_default(size=LETTER_PX)
    anchors = {"left": ((6, height / 2), "lm"), "right": ((width - 6, height / 2), "rm"),
               "top": ((width / 2, 4), "mt"), "bottom": ((width / 2, height - 4), "mb")}
    for edge, text in letters.items():
        if text:
            position, anchor = anchors[edge]
            draw.text(position, text, font=font, anchor=anchor, fill=(255, 255, 255), stroke_width=2,
                      stroke_fill=(0, 0, 0))


def legend_html(layers: list[Layer], active: str | None) -> str:
    """Colour swatch + name per structure; items carry data-structure so tests and users can find them."""
    if not layers:
        return "<div class='limis-legend'><em>No structures yet: type one, e.g. “left kidney”.</em></div>"
    items = []
    for layer in layers:
        red, green, blue = label_color(layer.label_id)
        name = html.escape(layer.display) + (" (active)" if layer.name == active else "")
        items.append(
            f"<span class='limis-legend-item' data-structure='{html.escape(layer.name)}' data-label-id='{layer.label_id}'"
            f" style='margin-right:1em;white-space:nowrap'><span style='display:inline-block;width:0.9em;height:0.9em;"
            f"background:rgb({red},{green},{blue});margin-right:0.3em;vertical-align:middle'></span>{name}</span>"
        )
    return "<div class='limis-legend'>" + "".join(items) + "</div>"


def with_caption(picture: Picture, caption: str, layers: list[Layer]) -> Image.Image:
    """The screen picture with a strip below it: legend swatches and a caption (for screenshots)."""
    font = ImageFont.load_default(size=14)
    strip = 26 * (1 + (len(layers) + 2) // 3)
    height, width = picture.rgb.shape[:2]
    canvas = Image.new("RGB", (width, height + strip), (20, 20, 20))
    canvas.paste(Image.fromarray(picture.rgb), (0, 0))
    draw = ImageDraw.Draw(canvas)
    draw.text((6, height + 5), caption, font=font, fill=(230, 230, 230))
    for number, layer in enumerate(layers):
        x, y = 6 + (number % 3) * (width // 3), height + 31 + (number // 3) * 26
        draw.rectangle([x, y, x + 14, y + 14], fill=label_color(layer.label_id))
        draw.text((x + 20, y), layer.display, font=font, fill=(230, 230, 230))
    return canvas
