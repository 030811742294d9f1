"""Patient-side decisions from image geometry, never from screen position alone."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from limis.detect.base import Box, Detection, SliceImage

BODY_THRESHOLD = 0.05  # windowed intensity above air; the body outline in a displayed slice


def box_patient_x(box: Box, image: SliceImage) -> float:
    """RAS x (mm; + = patient's right) of a box centre on a displayed slice."""
    col = (box[0] + box[2]) / 2.0
    row = (box[1] + box[3]) / 2.0
    return float(image.geometry.pixel_to_patient(row, col)[0])


def body_midline_x(image: SliceImage) -> float:
    """RAS x of the body's left-right middle on this slice (centre of the non-air extent)."""
    body = image.pixels > BODY_THRESHOLD
    if not body.any():
        rows, cols = image.pixels.shape
        return float(image.geometry.pixel_to_patient((rows - 1) / 2.0, (cols - 1) / 2.0)[0])
    rr, cc = np.nonzero(body)
    xs = image.geometry.pixel_to_patient(rr.astype(float), cc.astype(float))[..., 0]
    return float((xs.min() + xs.max()) / 2.0)


def keep_side(detections: Sequence[Detection], side: str, image: SliceImage) -> list[Detection]:
    """Detections whose box centre lies on the patient's `side` ("left" | "right") of the body midline."""
    midline = body_midline_x(image)
    sign = -1.0 if side == "left" else 1.0  # patient's left is -x in RAS
    return [d for d in detections if sign * (box_patient_x(d.box, image) - midline) > 0]
