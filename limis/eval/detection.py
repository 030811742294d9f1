"""Box metrics for detectors: IoU of XYXY boxes (pixel centres, inclusive), presence accuracy."""

from __future__ import annotations

from limis.detect.base import Box


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two XYXY boxes whose corners are pixel centres (inclusive extent)."""
    width = min(a[2], b[2]) - max(a[0], b[0]) + 1.0
    height = min(a[3], b[3]) - max(a[1], b[1]) + 1.0
    inter = max(0.0, width) * max(0.0, height)

    def area(box: Box) -> float:
        return max(0.0, box[2] - box[0] + 1.0) * max(0.0, box[3] - box[1] + 1.0)

    union = area(a) + area(b) - inter
    return inter / union if union > 0 else 0.0
