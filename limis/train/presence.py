"""Per-concept presence thresholds from held-out slice scores, so an unsure head answers "not found".

For a concept seen present on enough held-out slices, the threshold on its peak probability
maximises slice-level F2 (recall weighted 4x over precision; present = the concept fills at least
half a cell; absent = not at all; slivers in between are ignored). Recall comes first because a
missed slice inside an organ cuts its 3D z-range, while the pipeline's longest-run rule already
drops isolated false hits. Small organs get lower thresholds than large ones. A concept seen only
absent (brain, urinary bladder on abdominal scans) is judged per volume, because "not found" is a
claim about the whole scan: its threshold sits just above the held-out absent volumes' peaks (all but
the top `fp_rate` share), never below the default. A slice-level 1 % quantile let one volume in eight
claim a bladder: a scan has ~100 slices.

Thresholds are only as good as the held-out slices behind them, per modality: a concept never seen
present on held-out patients of a modality (bladder on MR, pancreas on MR) has no measured recall or
precision there, and the head's score for it is a guess (a fold-2 head put a 0.96 "bladder" on a
T2 MR). `validated_concepts` lists per modality the concepts the detector may report at all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from limis.errors import LimisError

MIN_NEGATIVE_SLICES = 50  # fewer absent slices say too little about a concept's false positives
MIN_POSITIVE_SLICES = 20  # fewer present slices say too little about its recall
VOLUME_MARGIN = 0.01  # an absent-only concept's threshold lies this far above the held-out volume peak it excludes
GRID = np.round(np.arange(0.05, 0.951, 0.05), 2)


def read_scores(paths: Sequence[Path]) -> dict[str, np.ndarray]:
    """Concatenate `heldout_slice_scores.npz` files written by `cross_validate` (same concept list)."""
    parts = [np.load(str(p)) for p in paths]
    if not parts:
        raise LimisError("no held-out slice scores given; run `limis train lite-grounding --cv-folds ...` first.")
    concepts = [str(c) for c in parts[0]["concepts"]]
    for path, part in zip(paths, parts):
        if [str(c) for c in part["concepts"]] != concepts:
            raise LimisError(f"{path}: another concept list than {paths[0]}; use scores of one cross-validation run.")
    if any("case" not in part for part in parts):
        raise LimisError("held-out slice scores without case ids (an older LIMIS wrote them); "
                         "re-run `limis train lite-grounding --cv-folds ...`.")
    keys = ("peak", "truth", "labelled", "modality", "case")
    return {"concepts": np.array(concepts), **{k: np.concatenate([p[k] for p in parts]) for k in keys}}


def presence_thresholds(scores: dict[str, np.ndarray], default: float, fp_rate: float = 0.01,
                        cap: float = 0.95) -> dict[str, float]:
    """Concept -> peak threshold: F2 over held-out slices, or for absent-only concepts at most `fp_rate` of
    held-out volumes claimed (`scores["case"]` names each slice's volume)."""
    chosen = {}
    for index, concept in enumerate(scores["concepts"]):
        labelled = scores["labelled"][:, index]
        peak, truth = scores["peak"][labelled, index], scores["truth"][labelled, index]
        negative, positive = truth == 0, truth >= 0.5
        if positive.sum() >= MIN_POSITIVE_SLICES and negative.sum() >= MIN_NEGATIVE_SLICES:
            chosen[str(concept)] = float(GRID[int(np.argmax([_f_beta(peak, positive, negative, t) for t in GRID]))])
        elif negative.sum() >= MIN_NEGATIVE_SLICES:
            volume_peaks = absent_volume_peaks(peak, truth, scores["case"][labelled])
            if volume_peaks.size:  # present in every volume, yet too rarely to judge: the default stays
                excluded = float(np.quantile(volume_peaks, 1.0 - fp_rate, method="higher")) + VOLUME_MARGIN
                chosen[str(concept)] = round(float(np.clip(excluded, default, cap)), 3)
    return chosen


def validated_concepts(scores: dict[str, np.ndarray], min_present: int = MIN_POSITIVE_SLICES) -> dict[str, list[str]]:
    """Modality -> the concepts present (>= half a cell) on at least `min_present` held-out slices of that modality."""
    present = (scores["truth"] >= 0.5) & scores["labelled"]  # (N, C)
    return {str(modality): [str(c) for c, n in zip(scores["concepts"], present[scores["modality"] == modality].sum(0))
                            if n >= min_present]
            for modality in np.unique(scores["modality"])}


def absent_claims(scores: dict[str, np.ndarray], thresholds: dict[str, float],
                  default: float) -> dict[str, dict[str, list[int]]]:
    """Modality -> concept -> [claimed, asked]: of the held-out volumes of that modality labelled for the concept
    and wholly without it (`asked`), those whose highest slice peak reaches its threshold; concepts claimed at least once."""
    claims: dict[str, dict[str, list[int]]] = {}
    for modality in np.unique(scores["modality"]):
        of_modality = scores["modality"] == modality
        for index, concept in enumerate(scores["concepts"]):
            rows = of_modality & scores["labelled"][:, index]
            peaks = absent_volume_peaks(scores["peak"][rows, index], scores["truth"][rows, index], scores["case"][rows])
            claimed = int((peaks >= thresholds.get(str(concept), default)).sum())
            if claimed:
                claims.setdefault(str(modality), {})[str(concept)] = [claimed, int(peaks.size)]
    return claims


def absent_volume_peaks(peak: np.ndarray, truth: np.ndarray, case: np.ndarray) -> np.ndarray:
    """(V,) the highest slice peak of each volume the concept is wholly absent from (no slice with truth > 0).

    `peak`, `truth` and `case` (the slice's volume) are per slice (N,); V may be 0.
    """
    absent = ~np.isin(case, case[truth > 0])
    names, which = np.unique(case[absent], return_inverse=True)
    maxima = np.full(len(names), -np.inf)
    np.maximum.at(maxima, which, peak[absent])
    return maxima


def _f_beta(peak: np.ndarray, positive: np.ndarray, negative: np.ndarray, threshold: float, beta: float = 2.0) -> float:
    hits = peak >= threshold
    true_pos = int((hits & positive).sum())
    false_pos = int((hits & negative).sum())
    missed = int((~hits & positive).sum())
    weight = beta * beta
    return (1 + weight) * true_pos / max((1 + weight) * true_pos + weight * missed + false_pos, 1)


def threshold_report(scores: dict[str, np.ndarray], thresholds: dict[str, float], default: float) -> list[list[object]]:
    """Per concept: threshold, held-out false-positive rate over absent slices and over wholly absent volumes,
    and recall on slices it fills >= half a cell."""
    rows = []
    for index, concept in enumerate(scores["concepts"]):
        labelled = scores["labelled"][:, index]
        if not labelled.any():
            continue
        threshold = thresholds.get(str(concept), default)
        peak, truth = scores["peak"][labelled, index], scores["truth"][labelled, index]
        negative, positive = truth == 0, truth >= 0.5
        volume_peaks = absent_volume_peaks(peak, truth, scores["case"][labelled])
        rows.append([str(concept), threshold, int(negative.sum()),
                     f"{np.mean(peak[negative] >= threshold):.3f}" if negative.any() else "",
                     len(volume_peaks), f"{np.mean(volume_peaks >= threshold):.3f}" if volume_peaks.size else "",
                     int(positive.sum()), f"{np.mean(peak[positive] >= threshold):.3f}" if positive.any() else ""])
    return rows
