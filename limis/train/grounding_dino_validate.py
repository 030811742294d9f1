"""Validation of a Grounding DINO being trained: per-structure AP50 and recall@IoU 0.5 on held-out slices.

Boxes come from `GroundingDinoDetector` wrapped around the live model, so validation scores the
exact prompt format, phrase matching and box conversion that inference uses.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from limis.eval.detection import average_precision, recall_at_iou
from limis.imaging.display import Plane, SliceGeometry
from limis.imaging.slice_image import SliceImage
from limis.train.samples import SliceSample

RECALL_SCORE = 0.25  # recall counts boxes above GroundingDinoDetector's default box threshold


def as_slice_image(sample: SliceSample) -> SliceImage:
    """A sample as a detector input; the geometry is a one-slice axial stand-in with the sample's pixel spacing."""
    rows, cols = sample.labels.shape
    affine = np.diag([sample.pixel_mm[1], sample.pixel_mm[0], 1.0, 1.0])  # axial display: rows = axis 1, cols = axis 0
    geometry = SliceGeometry(shape=(cols, rows, 1), affine=affine, plane=Plane.AXIAL, index=0)
    return SliceImage(sample.pixels, geometry, sample.window, key=(sample.case_id, sample.index), modality=sample.modality)


def structure_scores(model: Any, processor: Any, samples: Sequence[SliceSample], device: str) -> list[dict]:
    """One row per structure boxed on any sample: AP50 over all detections, recall@0.5 above `RECALL_SCORE`.

    The model is put in eval mode (the caller switches it back). Rows: structure, ap50, recall50, boxes.
    """
    from limis.detect.grounding_dino import GroundingDinoDetector

    truths: dict[str, dict[int, list]] = {}
    for key, sample in enumerate(samples):
        for entry in sample.boxes():
            truths.setdefault(entry.structure, {}).setdefault(key, []).append(entry.box)
    structures = sorted(truths)
    detector = GroundingDinoDetector(model, processor, device=device, box_threshold=0.0)
    found = detector.detect_batch([as_slice_image(s) for s in samples], structures)
    rows = []
    for structure in structures:
        ranked = [(key, d.score, d.box) for key, image in enumerate(found) for d in image if d.structure == structure]
        confident = [entry for entry in ranked if entry[1] >= RECALL_SCORE]
        rows.append({
            "structure": structure,
            "ap50": average_precision(ranked, truths[structure]),
            "recall50": recall_at_iou(confident, truths[structure]),
            "boxes": sum(len(boxes) for boxes in truths[structure].values()),
        })
    return rows


def summary(rows: Sequence[dict]) -> dict[str, float]:
    """Means over structures: val_ap50 and val_recall50 (NaN when there are no rows)."""
    def mean(column: str) -> float:
        return float(np.mean([r[column] for r in rows])) if rows else math.nan

    return {"val_ap50": mean("ap50"), "val_recall50": mean("recall50")}


class ValidationLog:
    """validation.csv in the run folder: one row per (step, structure); metrics.csv keeps the means."""

    FIELDS = ("step", "structure", "ap50", "recall50", "boxes")

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, step: int, rows: Sequence[dict]) -> None:
        new = not self.path.exists()
        with self.path.open("a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=self.FIELDS)
            if new:
                writer.writeheader()
            writer.writerows({"step": step, **row} for row in rows)

    def truncate_after(self, step: int) -> None:
        """Drop rows of steps after `step` (a resumed run validates them again)."""
        if not self.path.exists():
            return
        with self.path.open(newline="") as handle:
            kept = [r for r in csv.DictReader(handle) if int(r["step"]) <= step]
        self.path.unlink()
        for at in dict.fromkeys(int(r["step"]) for r in kept):
            self.append(at, [{k: v for k, v in r.items() if k != "step"} for r in kept if int(r["step"]) == at])
