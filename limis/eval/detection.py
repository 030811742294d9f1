"""Box metrics for detectors: IoU of XYXY boxes (pixel centres, inclusive), AP50 and recall per structure."""

from __future__ import annotations

import math
from typing import Hashable, Sequence

from limis.imaging.slice_image import Box


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two XYXY boxes whose corners are pixel centres (inclusive extent)."""
    width = min(a[2], b[2]) - max(a[0], b[0]) + 1.0
    height = min(a[3], b[3]) - max(a[1], b[1]) + 1.0
    inter = max(0.0, width) * max(0.0, height)

    def area(box: Box) -> float:
        return max(0.0, box[2] - box[0] + 1.0) * max(0.0, box[3] - box[1] + 1.0)

    union = area(a) + area(b) - inter
    return inter / union if union > 0 else 0.0


def match_detections(
    detections: Sequence[tuple[Hashable, float, Box]],
    truths: dict[Hashable, Sequence[Box]],
    iou_threshold: float = 0.5,
) -> tuple[list[bool], int]:
    """VOC matching of one structure's detections, best score first.

    `detections` are (image key, score, XYXY box); `truths` maps image key -> true XYXY boxes (pixel
    centres, inclusive). A detection is a true positive when the truth it overlaps most on its image
    reaches `iou_threshold` and no better-scored detection took that truth already (a duplicate
    counts as a false positive). Returns (hit per detection in score order, number of true boxes).
    """
    taken = {key: [False] * len(boxes) for key, boxes in truths.items()}
    hits = []
    for key, _, box in sorted(detections, key=lambda d: -d[1]):
        overlaps = [box_iou(box, truth) for truth in truths.get(key, ())]
        best = max(range(len(overlaps)), key=overlaps.__getitem__, default=None)
        hit = best is not None and overlaps[best] >= iou_threshold and not taken[key][best]
        if hit:
            taken[key][best] = True
        hits.append(hit)
    return hits, sum(len(boxes) for boxes in truths.values())


def average_precision(
    detections: Sequence[tuple[Hashable, float, Box]],
    truths: dict[Hashable, Sequence[Box]],
    iou_threshold: float = 0.5,
) -> float:
    """VOC all-point AP of one structure: area under the precision envelope over score-ranked detections.

    Arguments as in `match_detections`; NaN when there is no true box (AP is undefined there).
    """
    hits, total = match_detections(detections, truths, iou_threshold)
    if total == 0:
        return math.nan
    precision, recall, found = [], [], 0
    for rank, hit in enumerate(hits, start=1):
        found += hit
        precision.append(found / rank)
        recall.append(found / total)
    envelope = precision[:]  # best precision at this recall or any higher one
    for i in range(len(envelope) - 2, -1, -1):
        envelope[i] = max(envelope[i], envelope[i + 1])
    area, previous = 0.0, 0.0
    for p, r in zip(envelope, recall):
        area += (r - previous) * p
        previous = r
    return area


def recall_at_iou(
    detections: Sequence[tuple[Hashable, float, Box]],
    truths: dict[Hashable, Sequence[Box]],
    iou_threshold: float = 0.5,
) -> float:
    """Share of true boxes matched (as in `match_detections`) by any of `detections`; NaN without true boxes."""
    hits, total = match_detections(detections, truths, iou_threshold)
    return sum(hits) / total if total else math.nan
