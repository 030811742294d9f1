"""`limis eval interaction`: language vs clicks vs boxes in 3D, each starting from the text detector's answer.

Per case x structure the session is asked the structure's name by the text detector it ships with
(or the fold's head with --detector-weights), exactly as a user gets it, misses included; each
simulated user (`limis.eval.robots`) then has K interactions. Sessions never see the reference:
they are built without one, and users act only through words, clicks or boxes.

Metrics (3D Dice after each turn): the curve with 95% CIs over patients, NoI@85/90 (turns to reach
it; 0 when the start does, K+1 when never), failure rate at K, Dice-AUC (mean Dice over turns 0..K,
trapezoid rule) and seconds per interaction. Resumable like `eval accuracy`.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Callable

import numpy as np

from limis.eval.cases import load_case, present_structures
from limis.eval.datasets import Manifest
from limis.eval.parallel import merge_parts, process_share
from limis.eval.provenance import claim_run_folder
from limis.eval.results import ResultsFile
from limis.eval.robots import USERS
from limis.eval.stats import bootstrap_ci
from limis.vocab import label_ids

FIELDS = ["user", "case", "patient", "structure", "turn", "action", "dice", "seconds"]
THRESHOLDS = (0.85, 0.90)


def run_interaction(manifest: Manifest, split: str, structures: list[str] | None, out_dir: Path, segmenter,
                    detector_factory: Callable, turns: int = 10, stop_dice: float = 0.9,
                    cache_dir: Path | None = None, users: tuple[str, ...] = USERS, seed: int = 0) -> dict:
    """Play every user on every case x structure of the split; returns and writes the summary."""
    from limis.eval.robots import Screen, make_robot, play
    from limis.interact.session import Session
    from limis.segment.cache import EmbeddingCache
    from limis.vocab import display_name

    out_dir = Path(out_dir)
    config = {"dataset": str(manifest.path), "split": split, "structures": structures, "turns": turns,
              "stop_dice": stop_dice, "users": list(users), "seed": seed, "start": "text detector",
              "segmenter": getattr(segmenter, "name", "?")}
    claim_run_folder(out_dir, config, (segmenter,))
    cases, part = process_share(manifest.split(split), out_dir / "turns.csv")
    results = ResultsFile(part, FIELDS)
    done = results.done()
    for case in cases:
        volume, labels, names = load_case(case, manifest)
        wanted = [s for s in present_structures(labels, names, structures) if (case.case_id, s) not in done]
        if not wanted:
            continue
        cache = EmbeddingCache(segmenter, disk_dir=cache_dir)
        detector = detector_factory(volume, cache)
        rows = []
        for structure in wanted:
            truth = np.isin(labels, label_ids(structure, names))
            start = Session(volume, cache, detector=detector)  # no reference: the session sees words only
            start.apply(display_name(structure).lower())
            for user in users:
                robot = make_robot(user, structure, truth, seed=zlib.crc32(f"{seed}/{case.case_id}/{structure}/{user}".encode()))
                for row in play(robot, Screen(start.fork()), turns, stop_dice):
                    rows.append({"user": user, "case": case.case_id, "patient": case.patient, "structure": structure,
                                 **row, "dice": round(row["dice"], 6), "seconds": round(row["seconds"], 4)})
        results.append(rows)
    merged = merge_parts(out_dir / "turns.csv")
    if merged is None:
        return {}
    summary = summarise(ResultsFile(merged, FIELDS).rows(), turns)
    write_summary(summary, out_dir, manifest.name, split, turns)
    return summary


def curves(rows: list[dict], user: str, structure: str | None = None) -> dict[tuple[str, str], np.ndarray]:
    """(patient, structure) -> Dice after turns 0..K for one user (one organ, or all when None)."""
    runs: dict[tuple[str, str], dict[int, float]] = {}
    for row in rows:
        if row["user"] == user and (structure is None or row["structure"] == structure):
            runs.setdefault((row["patient"], row["structure"]), {})[int(row["turn"])] = float(row["dice"])
    return {key: np.array([run[t] for t in sorted(run)]) for key, run in runs.items()}


def turns_to_reach(curve: np.ndarray, threshold: float) -> int:
    """NoI@threshold: the first turn whose Dice reaches it (0 = the start does), K+1 when never."""
    reached = np.flatnonzero(curve >= threshold)
    return int(reached[0]) if reached.size else len(curve)


def dice_auc(curve: np.ndarray) -> float:
    """Mean Dice over turns 0..K by the trapezoid rule (1.0 = perfect from the start)."""
    return float(np.trapezoid(curve) / max(1, len(curve) - 1)) if len(curve) > 1 else float(curve[0])


def _per_patient(values: dict[tuple[str, str], float]) -> np.ndarray:
    """Patient means (a patient's organs averaged), the unit the CIs resample."""
    patients: dict[str, list[float]] = {}
    for (patient, _), value in values.items():
        patients.setdefault(patient, []).append(value)
    return np.array([np.mean(v) for v in patients.values()])


def _stat(values: dict[tuple[str, str], float]) -> dict[str, float]:
    per_patient = _per_patient(values)
    low, high = bootstrap_ci(per_patient) if len(per_patient) > 1 else (float("nan"), float("nan"))
    return {"mean": float(np.mean(list(values.values()))), "ci_low": low, "ci_high": high}


def summarise(rows: list[dict], turns: int) -> dict[str, dict]:
    """Per user, pooled ("all") and per organ: the Dice curve with CIs, NoI@85/90, fail@K, Dice-AUC, s/turn."""
    organs = sorted({row["structure"] for row in rows})
    summary: dict[str, dict] = {}
    for user in dict.fromkeys(row["user"] for row in rows):
        seconds = [float(r["seconds"]) for r in rows if r["user"] == user and int(r["turn"]) > 0 and float(r["seconds"]) > 0]
        entry: dict[str, dict] = {}
        for organ in [None, *organs]:
            runs = curves(rows, user, organ)
            if not runs:
                continue
            stacked = np.stack(list(runs.values()))
            per_turn = [_stat({key: float(curve[t]) for key, curve in runs.items()}) for t in range(stacked.shape[1])]
            block = {"runs": len(runs), "patients": len({p for p, _ in runs}), "dice_per_turn": per_turn,
                     "dice_auc": _stat({k: dice_auc(c) for k, c in runs.items()})}
            for threshold in THRESHOLDS:
                key = round(threshold * 100)
                block[f"noi_{key}"] = _stat({k: float(turns_to_reach(c, threshold)) for k, c in runs.items()})
                block[f"fail_{key}_at_k"] = float(np.mean([turns_to_reach(c, threshold) > turns for c in runs.values()]))
            entry[organ or "all"] = block
        entry["all"]["seconds_per_interaction"] = float(np.median(seconds)) if seconds else 0.0
        summary[user] = entry
    return summary


def write_summary(summary: dict, out_dir: Path, dataset: str, split: str, turns: int) -> None:
    import json

    from limis.eval.plots import dice_per_turn
    from limis.eval.report import markdown_table

    def ci(stat: dict, digits: int = 3) -> str:
        if not np.isfinite(stat["ci_low"]):  # one patient: no interval
            return f"{stat['mean']:.{digits}f}"
        return f"{stat['mean']:.{digits}f} [{stat['ci_low']:.{digits}f}, {stat['ci_high']:.{digits}f}]"

    rows = []
    for user, entry in summary.items():
        for organ, block in entry.items():
            rows.append([organ, user, block["runs"], ci(block["dice_per_turn"][0]), ci(block["dice_per_turn"][-1]),
                         ci(block["dice_auc"]), ci(block["noi_85"], 2), ci(block["noi_90"], 2),
                         f"{block['fail_85_at_k']:.2f}", f"{block['fail_90_at_k']:.2f}"])
    rows.sort(key=lambda row: (row[0] != "all", row[0], USERS.index(row[1]) if row[1] in USERS else 9))
    table = markdown_table(["organ", "user", "runs", "Dice start", f"Dice at K={turns}", "Dice-AUC", "NoI@85",
                            "NoI@90", "fail@K (85)", "fail@K (90)"], rows)
    speed = ", ".join(f"{user} {entry['all']['seconds_per_interaction']:.2f} s" for user, entry in summary.items())
    header = (f"# Simulated interaction in 3D: {dataset}, split {split}, K = {turns}\n\n"
              "Every run starts from the text detector's answer to the structure's name. 3D Dice; mean over runs "
              "[95% CI over patients]. NoI@x: interactions to reach Dice x (0 = the start does, K+1 = never). "
              f"Median seconds per interaction: {speed}.\n\n")
    (out_dir / "summary.md").write_text(header + table + "\n")
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    bands = {user: np.array([[s["mean"], s["ci_low"], s["ci_high"]] for s in entry["all"]["dice_per_turn"]])
             for user, entry in summary.items()}
    dice_per_turn(bands, out_dir / "dice_per_turn.png")
    organs = sorted({o for entry in summary.values() for o in entry if o != "all"})
    for organ in organs:
        dice_per_turn({user: np.array([[s["mean"], s["ci_low"], s["ci_high"]] for s in entry[organ]["dice_per_turn"]])
                       for user, entry in summary.items() if organ in entry}, out_dir / f"dice_per_turn_{organ}.png",
                      title=organ)
