"""`limis eval interaction`: simulated language user vs the click (NoC) baseline on the same cases.

Reports Dice after each turn, NoI@85/90 (interactions needed; 0 when the start already reaches
it), the failure rate at K turns, and seconds per interaction. Resumable like the accuracy runner.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from limis.eval.cases import load_case, present_structures
from limis.eval.datasets import Manifest
from limis.eval.parallel import merge_parts, process_share
from limis.eval.provenance import claim_run_folder
from limis.eval.results import ResultsFile
from limis.vocab import label_ids

USERS = ("language", "clicks")
FIELDS = ["user", "case", "patient", "structure", "slice", "turn", "utterance", "dice", "seconds"]
STARTS = ("poor", "oracle")


def run_interaction(manifest: Manifest, split: str, structures: list[str] | None, out_dir: Path, segmenter,
                    turns: int = 8, start: str = "poor", stop_dice: float = 0.9, cache_dir: Path | None = None) -> dict:
    """Run both simulated users on every case x structure; returns and writes the summary."""
    from limis.eval.simulated_user import poor_box, reference_slice, run_user, truth_on_slice
    from limis.imaging.slice_image import box_from_mask
    from limis.interact.session import Session
    from limis.segment.cache import EmbeddingCache

    out_dir = Path(out_dir)
    config = {"dataset": str(manifest.path), "split": split, "structures": structures, "turns": turns,
              "start": start, "stop_dice": stop_dice, "segmenter": getattr(segmenter, "name", "?")}
    claim_run_folder(out_dir, config, (segmenter,))
    cases, part = process_share(manifest.split(split), out_dir / "turns.csv")
    results = ResultsFile(part, FIELDS)
    done = {(case, structure) for case, structure in results.done()}
    for case in cases:
        volume, labels, names = load_case(case, manifest)
        cache = EmbeddingCache(segmenter, disk_dir=cache_dir)
        rows = []
        for structure in present_structures(labels, names, structures):
            if (case.case_id, structure) in done:
                continue
            ids = label_ids(structure, names)
            index = reference_slice(labels, ids)
            truth = truth_on_slice(labels, ids, index)
            for user in USERS:
                session = Session(volume, cache, reference=(labels, names), index=index, volumetric=False)
                truth_box = box_from_mask(truth)
                begin = poor_box(truth_box, session.current_image().geometry) if start == "poor" else truth_box
                for turn in run_user(session, structure, truth, begin, user, turns, stop_dice):
                    rows.append({"user": user, "case": case.case_id, "patient": case.patient, "structure": structure,
                                 "slice": index, "turn": turn.turn, "utterance": turn.utterance,
                                 "dice": round(turn.dice, 6), "seconds": round(turn.seconds, 4)})
        results.append(rows)
    merged = merge_parts(out_dir / "turns.csv")
    if merged is None:
        return {}
    summary = summarise(ResultsFile(merged, FIELDS).rows(), turns)
    write_summary(summary, out_dir, manifest.name, split, start)
    return summary


def summarise(rows: list[dict], turns: int) -> dict[str, dict]:
    """Per user: mean Dice per turn, NoI@85/90 over runs that reach it, failure rates at K, s/turn."""
    summary = {}
    for user in USERS:
        runs: dict[tuple[str, str], list[tuple[int, float]]] = {}
        seconds = []
        for row in rows:
            if row["user"] != user:
                continue
            runs.setdefault((row["case"], row["structure"]), []).append((int(row["turn"]), float(row["dice"])))
            if int(row["turn"]) > 0 and float(row["seconds"]) > 0:
                seconds.append(float(row["seconds"]))
        if not runs:
            continue
        curves = np.array([[d for _, d in sorted(run)] for run in runs.values()])
        entry = {"runs": len(runs), "mean_dice_per_turn": curves.mean(axis=0).round(4).tolist(),
                 "seconds_per_interaction": float(np.mean(seconds)) if seconds else 0.0}
        for threshold in (0.85, 0.90):
            reached = [int(np.argmax(c >= threshold)) for c in curves if (c >= threshold).any()]
            key = f"{round(threshold * 100)}"
            entry[f"noi_{key}"] = float(np.mean(reached)) if reached else float("nan")
            entry[f"fail_{key}_at_k"] = 1.0 - len(reached) / len(curves)
        summary[user] = entry
    return summary


def write_summary(summary: dict, out_dir: Path, dataset: str, split: str, start: str) -> None:
    from limis.eval.plots import dice_per_turn
    from limis.eval.report import markdown_table

    table = markdown_table(
        ["user", "runs", "Dice start", "Dice at K", "NoI@85", "NoI@90", "fail@K (85)", "fail@K (90)", "s / interaction"],
        [[user, e["runs"], f"{e['mean_dice_per_turn'][0]:.3f}", f"{e['mean_dice_per_turn'][-1]:.3f}",
          f"{e['noi_85']:.2f}", f"{e['noi_90']:.2f}", f"{e['fail_85_at_k']:.2f}", f"{e['fail_90_at_k']:.2f}",
          f"{e['seconds_per_interaction']:.2f}"] for user, e in summary.items()],
    )
    header = (f"# Simulated interaction: {dataset}, split {split}, start '{start}'\n\n"
              "NoI@x: mean interactions to reach Dice x over the runs that reach it (0 = the start does); "
              "fail@K: share of runs that never reach it within K turns.\n\n")
    (out_dir / "summary.md").write_text(header + table)
    dice_per_turn({u: np.array(e["mean_dice_per_turn"]) for u, e in summary.items()}, out_dir / "dice_per_turn.png")
