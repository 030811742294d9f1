"""Text -> box evaluation: per-slice box IoU and presence accuracy, and 3D Dice after the segmenter.

Every detector is scored on the same cases beside the ground-truth-box upper bound (oracle).
Structures asked include absent ones (e.g. "kidney_left" on a scan without kidneys): there the
right answer is "not present", on every slice and in 3D.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from limis.eval.detection import box_iou
from limis.eval.metrics import dice
from limis.imaging.display import Plane, display_slice, slice_count
from limis.imaging.slice_image import box_from_mask
from limis.pipeline.grounded import GroundedPipeline, SegmentOptions, detect_structure
from limis.pipeline.slices import choose_window, slice_image
from limis.vocab import label_ids

MIN_PRESENT_MM2 = 100.0  # a structure covering less of a slice is not scored as present there
SWAP_PAIRS = (("liver", "spleen"),)


@dataclass
class GroundingRow:
    """One (case, structure, detector) result."""

    case: str
    structure: str
    detector: str
    slices: int
    present_slices: int
    presence_accuracy: float
    mean_box_iou: float  # over slices where the structure is present (a miss counts 0)
    recall_iou50: float  # fraction of present slices whose best box has IoU >= 0.5
    swapped_slices: int  # slices whose best box overlaps the swap partner's reference more than its own
    dice_3d: float
    found_3d: bool
    present_3d: bool


def _reference_boxes(labels: np.ndarray, ids: list[int], plane: Plane, index: int, pixel_mm2: float):
    view = np.isin(display_slice(labels, plane, index), ids)
    return box_from_mask(view) if view.sum() * pixel_mm2 >= MIN_PRESENT_MM2 else None


def evaluate_grounding(
    case: str,
    volume,
    labels: np.ndarray,
    names: dict[int, str],
    structures: Sequence[str],
    detectors: dict[str, object],
    cache,
    options: SegmentOptions = SegmentOptions(),
    say: Callable[[str], None] = lambda _: None,
) -> list[GroundingRow]:
    """Rows for every structure x detector on one case (`labels` canonical, like the volume)."""
    plane = Plane(options.plane)
    window = choose_window(volume, options.window)
    images = [slice_image(volume, plane, i, window) for i in range(slice_count(volume.shape, plane))]
    pixel_mm = images[0].geometry.pixel_spacing_mm
    ids_of = {s: label_ids(s, names) for s in set(structures) | {p for pair in SWAP_PAIRS for p in pair}}
    reference = {s: [_reference_boxes(labels, ids_of[s], plane, i, pixel_mm[0] * pixel_mm[1]) for i in range(len(images))]
                 for s in ids_of}
    rows = []
    for detector_name, detector in detectors.items():
        pipeline = GroundedPipeline(detector, cache)
        for structure in structures:
            best = [d[0].box if d else None for d in detect_structure(detector, images, structure)]
            truth = reference[structure]
            partner = _swap_partner(structure)
            row = _slice_scores(case, structure, detector_name, best, truth, reference.get(partner))
            mask = pipeline.trace_structure(volume, structure, window, options).volume(volume.shape, plane)
            ref3d = np.isin(labels, ids_of[structure])
            row.dice_3d = dice(mask, ref3d) if ref3d.any() else float("nan")
            row.found_3d, row.present_3d = bool(mask.any()), bool(ref3d.any())
            say(f"{case} {structure} {detector_name}: box IoU {row.mean_box_iou:.2f}, presence "
                f"{row.presence_accuracy:.2f}, 3D Dice {row.dice_3d:.3f}")
            rows.append(row)
    return rows


def _swap_partner(structure: str) -> str | None:
    for a, b in SWAP_PAIRS:
        if structure in (a, b):
            return b if structure == a else a
    return None


def _slice_scores(case, structure, detector_name, best, truth, partner_truth) -> GroundingRow:
    present = [t is not None for t in truth]
    correct = [(b is not None) == p for b, p in zip(best, present)]
    ious = [box_iou(b, t) if b is not None else 0.0 for b, t in zip(best, truth) if t is not None]
    swapped = 0
    if partner_truth is not None:
        for b, t, other in zip(best, truth, partner_truth):
            if b is not None and other is not None and box_iou(b, other) > (box_iou(b, t) if t is not None else 0.0):
                swapped += 1
    return GroundingRow(
        case=case, structure=structure, detector=detector_name, slices=len(truth), present_slices=sum(present),
        presence_accuracy=float(np.mean(correct)), mean_box_iou=float(np.mean(ious)) if ious else float("nan"),
        recall_iou50=float(np.mean([i >= 0.5 for i in ious])) if ious else float("nan"), swapped_slices=swapped,
        dice_3d=float("nan"), found_3d=False, present_3d=False,
    )


def run_grounding_eval(manifest, split: str, structures: Sequence[str], out_dir, detector_factory: Callable,
                       segmenter, cache_dir=None, say: Callable[[str], None] = print) -> list[GroundingRow]:
    """Evaluate detectors from `detector_factory(volume, labels, names, cache) -> {name: detector}` on a split.

    Writes grounding.csv and summary.md into `out_dir`; structures absent from a case are
    still asked (their right answer is "not present").
    """
    import csv
    from dataclasses import asdict, fields
    from pathlib import Path

    from limis.eval.cases import load_case
    from limis.eval.provenance import claim_run_folder
    from limis.segment.cache import EmbeddingCache

    out_dir = Path(out_dir)
    claim_run_folder(out_dir, {"dataset": str(manifest.path), "split": split, "structures": list(structures),
                               "kind": "grounding"}, (segmenter,))
    rows: list[GroundingRow] = []
    for case in manifest.split(split):
        volume, labels, names = load_case(case, manifest)
        cache = EmbeddingCache(segmenter, disk_dir=cache_dir)
        detectors = detector_factory(volume, labels, names, cache)
        rows.extend(evaluate_grounding(case.case_id, volume, labels, names, structures, detectors, cache, say=say))
    with (out_dir / "grounding.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[f.name for f in fields(GroundingRow)])
        writer.writeheader()
        writer.writerows(asdict(row) for row in rows)
    (out_dir / "summary.md").write_text(grounding_summary(rows, manifest.name, split))
    return rows


def grounding_summary(rows: Sequence[GroundingRow], dataset: str, split: str) -> str:
    """Markdown: one line per case x structure with every detector's box IoU, presence and 3D Dice."""
    from limis.eval.report import markdown_table

    detectors = list(dict.fromkeys(r.detector for r in rows))
    keyed = {(r.case, r.structure, r.detector): r for r in rows}
    lines = []
    for case, structure in dict.fromkeys((r.case, r.structure) for r in rows):
        cells: list[object] = [case, structure]
        for name in detectors:
            r = keyed.get((case, structure, name))
            if r is None:
                cells.extend([None] * 3)
                continue
            outcome = f"{r.dice_3d:.3f}" if r.present_3d else ("not present ✓" if not r.found_3d else "false positive")
            cells.extend([None if np.isnan(r.mean_box_iou) else f"{r.mean_box_iou:.2f}", f"{r.presence_accuracy:.2f}",
                          outcome + (f" ({r.swapped_slices} swapped)" if r.swapped_slices else "")])
        lines.append(cells)
    headers = ["case", "structure"] + [f"{d} {m}" for d in detectors for m in ("box IoU", "presence", "3D Dice")]
    return f"# Grounding: {dataset} / {split}\n\n" + markdown_table(headers, lines)
