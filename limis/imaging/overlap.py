"""Overlap of two masks of any dimension (2D slices, 3D volumes): the one Dice and IoU LIMIS uses.

Both are 1.0 when both masks are empty (nothing to find, nothing found).
"""

from __future__ import annotations

import numpy as np


def dice(pred: np.ndarray, ref: np.ndarray) -> float:
    pred, ref = pred.astype(bool), ref.astype(bool)
    total = int(pred.sum() + ref.sum())
    return 1.0 if total == 0 else float(2.0 * np.logical_and(pred, ref).sum() / total)


def iou(pred: np.ndarray, ref: np.ndarray) -> float:
    pred, ref = pred.astype(bool), ref.astype(bool)
    union = int(np.logical_or(pred, ref).sum())
    return 1.0 if union == 0 else float(np.logical_and(pred, ref).sum() / union)
