"""Pool cross-validated accuracy runs: text mode against ground-truth boxes, per structure, over held-out patients.

Each fold's text-mode run used a head trained without that fold's patients, so pooling the
folds' `results.csv` gives one out-of-patient row per (case, structure). The ratio of mean Dice
(text / ground-truth box, same segmenter, same cases) carries a paired percentile-bootstrap 95 %
CI over cases.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from limis.errors import LimisError
from limis.eval.stats import describe

OFF_ORGAN_DICE = 0.1  # a found mask below this Dice lies (almost) wholly off its structure


@dataclass(frozen=True)
class ModeComparison:
    structure: str
    cases: int
    text: dict[str, float]
    box: dict[str, float]
    ratio: float
    ratio_ci: tuple[float, float]
    not_found: int  # cases where text mode returned no mask for a present structure
    swapped: int  # cases whose mask lies mostly on the other side's reference
    off_organ: int  # cases with a mask that misses the structure (Dice < OFF_ORGAN_DICE): a wrong answer
    off_organ_named: int  # ... of them, answers that named where else the detector saw it (`also_seen`)


def read_rows(folders: Sequence[Path]) -> dict[tuple[str, str], dict[str, str]]:
    """(case, structure) -> row from each folder's results.csv; a case twice is refused (folds overlap)."""
    rows: dict[tuple[str, str], dict[str, str]] = {}
    for folder in folders:
        path = Path(folder) / "results.csv"
        if not path.is_file():
            raise LimisError(f"{folder}: no results.csv; give the mode folder written by `limis eval accuracy`.")
        with path.open(newline="") as handle:
            for row in csv.DictReader(handle):
                key = (row["case"], row["structure"])
                if key in rows:
                    raise LimisError(f"{path}: {key} also appears in another folder; folds must not overlap.")
                rows[key] = row
    return rows


def ratio_ci(text: np.ndarray, box: np.ndarray, resamples: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """Paired percentile-bootstrap 95 % CI of mean(text) / mean(box) over cases."""
    if text.size < 2:
        return float("nan"), float("nan")
    picks = np.random.default_rng(seed).integers(0, text.size, size=(resamples, text.size))
    ratios = text[picks].mean(1) / np.maximum(box[picks].mean(1), 1e-9)
    low, high = np.percentile(ratios, [2.5, 97.5])
    return float(low), float(high)


def compare_modes(text_folders: Sequence[Path], box_folders: Sequence[Path]) -> list[ModeComparison]:
    """One comparison per structure over the cases both modes evaluated."""
    text_rows, box_rows = read_rows(text_folders), read_rows(box_folders)
    shared = sorted(set(text_rows) & set(box_rows))
    if not shared:
        raise LimisError("the text and box runs share no (case, structure); evaluate the same split(s).")
    out = []
    for structure in sorted({s for _, s in shared}):
        keys = [k for k in shared if k[1] == structure]
        text = np.array([float(text_rows[k]["dice"]) for k in keys])
        box = np.array([float(box_rows[k]["dice"]) for k in keys])
        off = [k for k in keys if float(text_rows[k]["volume_pred_ml"]) > 0 and float(text_rows[k]["dice"]) < OFF_ORGAN_DICE]
        out.append(ModeComparison(
            structure, len(keys), describe(text), describe(box),
            float(text.mean() / max(box.mean(), 1e-9)), ratio_ci(text, box),
            sum(float(text_rows[k]["volume_pred_ml"]) == 0.0 for k in keys),
            sum(text_rows[k].get("swapped") == "1" for k in keys),
            len(off),
            sum(bool(text_rows[k].get("also_seen")) for k in off),  # runs written before the column: never named
        ))
    return out


def comparison_table(rows: Sequence[ModeComparison], targets: dict[str, float] | None = None) -> str:
    """Markdown: per structure text and box Dice with CIs, the ratio with its CI, misses and swaps, and the target."""
    from limis.eval.report import markdown_table

    targets = targets or {}

    def cell(stats: dict[str, float]) -> str:
        return f"{stats['mean']:.3f} [{stats['ci_low']:.3f}, {stats['ci_high']:.3f}]"

    lines = []
    for r in rows:
        goal = targets.get(r.structure)
        verdict = "" if goal is None else (f">= {goal:.2f}: " + ("met" if r.ratio >= goal else "**missed**"))
        ratio = f"{r.ratio:.3f} [{r.ratio_ci[0]:.3f}, {r.ratio_ci[1]:.3f}]"
        lines.append([r.structure, r.cases, cell(r.text), cell(r.box), ratio, r.not_found, r.swapped,
                      f"{r.off_organ} ({r.off_organ_named})", verdict])
    text_means = [r.text["mean"] for r in rows]
    box_means = [r.box["mean"] for r in rows]
    lines.append(["**mean over structures**", "", f"{np.mean(text_means):.3f}", f"{np.mean(box_means):.3f}",
                  f"{np.mean(text_means) / max(np.mean(box_means), 1e-9):.3f}", sum(r.not_found for r in rows),
                  sum(r.swapped for r in rows),
                  f"{sum(r.off_organ for r in rows)} ({sum(r.off_organ_named for r in rows)})", ""])
    headers = ["structure", "cases", "text Dice mean [95% CI]", "GT-box Dice mean [95% CI]", "text / GT-box [95% CI]",
               "not found", "L/R swaps", "off the organ (rival named)", "target"]
    return markdown_table(headers, lines)


def absent_table(folders: Sequence[Path]) -> str:
    """Markdown: per absent prompt, how often text mode drew a mask anyway (absent.csv of each folder), and how often
    the detector declined to look (a concept it does not report on that modality; files without the column: never)."""
    from limis.eval.report import markdown_table

    answers: dict[str, list[tuple[int, int]]] = {}  # structure -> (found, declined) per volume
    for folder in folders:
        path = Path(folder) / "absent.csv"
        if path.is_file():
            with path.open(newline="") as handle:
                for row in csv.DictReader(handle):
                    answers.setdefault(row["structure"], []).append((int(row["found"]), int(row.get("declined") or 0)))
    if not answers:
        return "No absent prompts were asked (`limis eval accuracy --mode text --absent ...`)."

    def row(name: str, pairs: list[tuple[int, int]]) -> list:
        found = sum(f for f, _ in pairs)
        return [name, len(pairs), sum(d for _, d in pairs), found, f"{found / len(pairs):.3f}"]

    rows = [row(name, pairs) for name, pairs in sorted(answers.items())]
    rows.append(row("**all absent prompts**", [p for pairs in answers.values() for p in pairs]))
    return markdown_table(["absent prompt", "volumes asked", "declined by the detector", "false positives",
                           "false-positive rate"], rows)
