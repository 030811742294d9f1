"""Patient-side decisions from image geometry, never from screen position alone."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from limis.detect.base import Detection
from limis.detect.body import body_extent
from limis.imaging.slice_image import Box, SliceImage


def box_patient_x(box: Box, image: SliceImage) -> float:
    """RAS x (mm; + = patient's right) of a box centre on a displayed slice."""
    col = (box[0] + box[2]) / 2.0
    row = (box[1] + box[3]) / 2.0
    return float(image.geometry.pixel_to_patient(row, col)[0])


def body_midline_x(image: SliceImage) -> float:
    """RAS x of the trunk's left-right middle on this slice (the centre of its extent; see `detect.body`).

    The whole image's centre when no trunk is found. The trunk, not every non-air pixel, so an
    arm beside the body, the table, or a CT whose air was clipped to -125 HU does not move it.
    """
    r0, c0, r1, c1 = body_extent(image.pixels)
    corners = image.geometry.pixel_to_patient(np.array([r0, r0, r1, r1]), np.array([c0, c1, c0, c1]))[..., 0]
    return float((corners.min() + corners.max()) / 2.0)


def keep_side(detections: Sequence[Detection], side: str, image: SliceImage) -> list[Detection]:
    """Detections whose box centre lies on the patient's `side` ("left" | "right") of the body midline."""
    midline = body_midline_x(image)
    sign = -1.0 if side == "left" else 1.0  # patient's left is -x in RAS
    return [d for d in detections if sign * (box_patient_x(d.box, image) - midline) > 0]
