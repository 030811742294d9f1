"""`limis eval accuracy`: per case x structure metrics, a summary with bootstrap CIs, plots, provenance.

Modes are never mixed: each mode writes its own folder, and a folder refuses another config.
Resumable: finished (case, structure) rows are skipped; each case's rows are fsynced when done.
Data-parallel over cases with `accelerate launch` (each process takes every n-th case and writes
its own part; the main process merges).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np

from limis.errors import LimisError
from limis.eval.cases import load_case, present_structures
from limis.eval.datasets import Manifest
from limis.eval.metrics import mask_metrics
from limis.eval.parallel import merge_parts, process_share
from limis.eval.provenance import claim_run_folder
from limis.eval.results import ResultsFile
from limis.eval.stats import describe
from limis.segment.cache import EmbeddingCache
from limis.vocab import label_ids, other_side

MODES = ("oracle-box", "text", "interactive")
FIELDS = ["mode", "case", "patient", "structure", "dice", "iou", "nsd", "hd95_mm", "volume_pred_ml",
          "volume_ref_ml", "volume_error_ml", "swapped", "also_seen", "seconds"]
# declined: 1 when the detector never looked for the structure on this modality (HeadConfig.validated)
ABSENT_FIELDS = ["mode", "case", "patient", "structure", "found", "declined", "voxels", "volume_pred_ml", "score"]


def run_accuracy(manifest: Manifest, split: str, mode: str, structures: list[str] | None, out_dir: Path,
                 segmenter, detector_factory: Callable | None = None, tolerance_mm: float = 2.0,
                 turns: int = 5, after_case: Callable[[str], None] | None = None,
                 cache_dir: Path | None = None, absent: list[str] | None = None) -> dict:
    """Evaluate one mode on one split; returns the summary (also written as summary.md).

    In text mode, `absent` structures are also asked on every case whose reference lacks them;
    each answer ("not found" is right) goes to absent.csv: the false-positive rate on absent prompts.
    """
    if mode not in MODES:
        raise LimisError(f"unknown mode '{mode}'; choose one of: {', '.join(MODES)}.")
    if mode == "text" and detector_factory is None:
        raise LimisError("text mode needs a detector (--detector grounding-dino --detector-weights DIR).")
    out_dir = Path(out_dir) / mode
    config = {"dataset": str(manifest.path), "split": split, "mode": mode, "structures": structures,
              "segmenter": getattr(segmenter, "name", "?"), "tolerance_mm": tolerance_mm, "turns": turns,
              "absent": absent or []}
    claim_run_folder(out_dir, config, (segmenter,))
    cases, part = process_share(manifest.split(split), out_dir / "results.csv")
    results = ResultsFile(part, FIELDS)
    absent_results = ResultsFile(part.with_name(part.name.replace("results", "absent")), ABSENT_FIELDS)
    done = results.done() | absent_results.done()
    for case in cases:
        volume, labels, names = load_case(case, manifest)
        wanted = [s for s in present_structures(labels, names, structures) if (case.case_id, s) not in done]
        present = set(present_structures(labels, names, None))
        missing = [s for s in (absent or []) if mode == "text" and s not in present and (case.case_id, s) not in done]
        if not wanted and not missing:
            continue
        cache = EmbeddingCache(segmenter, disk_dir=cache_dir)
        # one text detector per case: present and absent prompts share its per-slice scores
        detector = detector_factory(volume, cache) if mode == "text" else None
        if wanted:
            results.append(_evaluate_case(mode, case, volume, labels, names, wanted, cache, detector, tolerance_mm, turns))
        if missing:
            absent_results.append(_absent_rows(case, volume, missing, detector, cache))
        if after_case is not None:
            after_case(case.case_id)
    if absent:
        merge_parts(out_dir / "absent.csv")
    merged = merge_parts(out_dir / "results.csv")
    if merged is None:
        return {}
    summary = summarise(ResultsFile(merged, FIELDS).rows())
    write_summary(summary, out_dir, mode, manifest.name, split)
    return summary


def _evaluate_case(mode, case, volume, labels, names, wanted, cache, detector, tolerance_mm, turns):
    """Rows for the present structures; `detector` is the text-mode detector (None in the other modes)."""
    from limis.detect.oracle import OracleDetector
    from limis.pipeline.grounded import GroundedPipeline

    ids = {name: label_ids(name, names) for name in wanted}
    started = time.perf_counter()
    elsewhere: dict[str, tuple[tuple[int, int], ...]] = {}  # runs the pipeline named but did not follow
    if mode == "interactive":
        predictions = _interactive_predictions(volume, labels, names, wanted, cache, turns)
    else:
        detector = OracleDetector(labels, names) if mode == "oracle-box" else detector
        result = GroundedPipeline(detector, cache).segment(volume, wanted)
        predictions = {r.structure: result.labelmap == r.label_id for r in result.results}
        elsewhere = {r.structure: r.elsewhere for r in result.results}
    seconds = (time.perf_counter() - started) / max(1, len(wanted))
    rows = []
    for structure in wanted:
        metrics = mask_metrics(predictions[structure], np.isin(labels, ids[structure]), volume.spacing, tolerance_mm)
        swapped = side_swapped(predictions[structure], labels, names, structure)
        rows.append({"mode": mode, "case": case.case_id, "patient": case.patient, "structure": structure,
                     "dice": metrics.dice, "iou": metrics.iou, "nsd": metrics.nsd, "hd95_mm": metrics.hd95_mm,
                     "volume_pred_ml": metrics.volume_pred_ml, "volume_ref_ml": metrics.volume_ref_ml,
                     "volume_error_ml": metrics.volume_error_ml, "swapped": swapped,
                     "also_seen": ";".join(f"{first}-{last}" for first, last in elsewhere.get(structure, ())),
                     "seconds": round(seconds, 3)})
    return rows


def _absent_rows(case, volume, structures, detector, cache) -> list[dict]:
    """Text-mode answers for structures the reference does not contain (any mask is a false positive)."""
    from limis.pipeline.grounded import GroundedPipeline

    result = GroundedPipeline(detector, cache).segment(volume, structures)
    return [{"mode": "text", "case": case.case_id, "patient": case.patient, "structure": r.structure,
             "found": int(r.found), "declined": int(r.refusal is not None), "voxels": r.voxels,
             "volume_pred_ml": round(r.volume_ml, 3), "score": round(r.score, 3)}
            for r in result.results]


def side_swapped(prediction: np.ndarray, labels: np.ndarray, names: dict[int, str], structure: str) -> str:
    """"1" if a lateral structure's mask overlaps the reference of the patient's other side more than its own,
    "0" if not, "" for unpaired structures or when the other side has no reference."""
    other = other_side(structure)
    other_ids = label_ids(other, names) if other is not None else []
    if not other_ids:
        return ""
    own = int((prediction & np.isin(labels, label_ids(structure, names))).sum())
    return "1" if int((prediction & np.isin(labels, other_ids)).sum()) > own else "0"


def _interactive_predictions(volume, labels, names, wanted, cache, turns):
    """Final masks after the simulated language user, on each structure's reference slice (2D)."""
    from limis.eval.simulated_user import poor_box, reference_slice, run_user, truth_on_slice
    from limis.imaging.display import Plane, insert_display_slice
    from limis.imaging.slice_image import box_from_mask
    from limis.interact.session import Session

    predictions = {}
    for structure in wanted:
        ids = label_ids(structure, names)
        index = reference_slice(labels, ids)
        session = Session(volume, cache, reference=(labels, names), index=index, volumetric=False)
        truth = truth_on_slice(labels, ids, index)
        start = poor_box(box_from_mask(truth), session.current_image().geometry)
        run_user(session, structure, truth, start, "language", turns)
        mask = np.zeros(volume.shape, dtype=bool)
        insert_display_slice(mask, Plane.AXIAL, index, session.mask(structure))
        predictions[structure] = mask
    return predictions


def summarise(rows: list[dict]) -> dict[str, dict]:
    """Per structure: describe() of Dice, NSD and HD95 over cases."""
    by_structure: dict[str, list[dict]] = {}
    for row in rows:
        by_structure.setdefault(row["structure"], []).append(row)
    return {
        structure: {metric: describe(np.array([float(r[metric]) for r in items]))
                    for metric in ("dice", "nsd", "hd95_mm")}
                    | {"volume_ref_ml": float(np.median([float(r["volume_ref_ml"]) for r in items]))}
        for structure, items in sorted(by_structure.items())
    }


def write_summary(summary: dict, out_dir: Path, mode: str, dataset: str, split: str) -> None:
    """summary.md plus box plots and Dice-vs-size."""
    from limis.eval.plots import box_plot, dice_vs_size
    from limis.eval.report import markdown_table

    table = markdown_table(
        ["structure", "n", "Dice mean [95% CI]", "Dice median", "NSD mean", "HD95 median (mm)"],
        [[structure, stats["dice"]["n"],
          f"{stats['dice']['mean']:.3f} [{stats['dice']['ci_low']:.3f}, {stats['dice']['ci_high']:.3f}]",
          f"{stats['dice']['median']:.3f}", f"{stats['nsd']['mean']:.3f}", f"{stats['hd95_mm']['median']:.1f}"]
         for structure, stats in summary.items()],
    )
    header = (f"# Accuracy: {dataset}, split {split}, mode {mode}\n\n"
              "Mean, median and percentile-bootstrap 95 % CI of the mean over cases (n = cases).\n\n")
    (out_dir / "summary.md").write_text(header + table)
    rows = ResultsFile(out_dir / "results.csv", FIELDS).rows()
    values: dict[str, list[float]] = {}
    for row in rows:
        values.setdefault(row["structure"], []).append(float(row["dice"]))
    box_plot(values, "Dice", out_dir / "dice_boxplot.png")
    dice_vs_size([float(r["volume_ref_ml"]) for r in rows], [float(r["dice"]) for r in rows],
                 [r["structure"] for r in rows], out_dir / "dice_vs_size.png")
