"""A study's plain-data summary: counts, per-participant and per-task rows, n / mean / median / SD / min / max."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from limis.eval.usability.instruments import TLX_SUBSCALES, sus_band
from limis.eval.usability.records import Study


def _stats(values: Sequence[float]) -> dict[str, float | int | None]:
    """n, mean, median, sample SD (n - 1; empty below n = 2), min, max."""
    values = [float(v) for v in values]
    if not values:
        return {"n": 0, "mean": None, "median": None, "sd": None, "min": None, "max": None}
    return {"n": len(values), "mean": statistics.fmean(values), "median": statistics.median(values),
            "sd": statistics.stdev(values) if len(values) > 1 else None, "min": min(values), "max": max(values)}


def _mean_or_none(values: Sequence[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _median_or_none(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def _participant_row(participant: str, study: Study) -> dict[str, Any]:
    tasks = [t for t in study.tasks if t.participant == participant]
    forms = [q for q in study.questionnaires if q.participant == participant]
    dice = [t.dice_at_acceptance for t in tasks if t.dice_at_acceptance is not None]
    sus = _mean_or_none([q.sus for q in forms])
    return {
        "participant": participant, "n_questionnaires": len(forms), "sus": sus,
        "sus_band": None if sus is None else sus_band(sus), "tlx_raw": _mean_or_none([q.tlx_raw for q in forms]),
        "n_tasks": len(tasks), "tasks_accepted": sum(t.accepted for t in tasks),
        "median_task_seconds": _median_or_none([t.seconds for t in tasks]),
        "median_interactions_per_task": _median_or_none([t.n_interactions for t in tasks]),
        "mean_dice_at_acceptance": _mean_or_none(dice), "n_dice": len(dice),
    }


def _task_rows(study: Study) -> list[dict[str, Any]]:
    rows = []
    for task_id in dict.fromkeys(t.task_id for t in sorted(study.tasks, key=lambda t: t.start_time)):
        tasks = [t for t in study.tasks if t.task_id == task_id]
        dice = [t.dice_at_acceptance for t in tasks if t.dice_at_acceptance is not None]
        rows.append({
            "task_id": task_id, "task": next((t.task for t in tasks if t.task), ""), "n": len(tasks),
            "accepted": sum(t.accepted for t in tasks), "seconds": _stats([t.seconds for t in tasks]),
            "interactions": _stats([t.n_interactions for t in tasks]), "dice_at_acceptance": _stats(dice),
        })
    return rows


def summarise(study: Study) -> dict[str, Any]:
    """Plain-data summary (JSON-serialisable): counts, per-participant rows, overall statistics.

    SUS and raw TLX come from each participant's latest questionnaire, so their overall n is participants;
    task measures use every task (n = tasks); TLX subscales use every questionnaire.
    """
    names = sorted({t.participant for t in study.tasks} | {q.participant for q in study.questionnaires})
    participants = [_participant_row(name, study) for name in names]
    sus = [p["sus"] for p in participants if p["sus"] is not None]
    overall = {
        "sus": _stats(sus),
        "tlx_raw": _stats([p["tlx_raw"] for p in participants if p["tlx_raw"] is not None]),
        "task_seconds": _stats([t.seconds for t in study.tasks]),
        "interactions_per_task": _stats([t.n_interactions for t in study.tasks]),
        "dice_at_acceptance": _stats([t.dice_at_acceptance for t in study.tasks if t.dice_at_acceptance is not None]),
    }
    return {
        "counts": {
            "participants": len(names), "sessions": study.sessions, "tasks": len(study.tasks),
            "tasks_accepted": sum(t.accepted for t in study.tasks), "questionnaires": len(study.questionnaires),
            "questionnaires_superseded": len(study.superseded), "log_files": study.log_files,
            "skipped_log_lines": len(study.skipped_lines),
        },
        "participants": participants,
        "overall": overall,
        "sus_band": sus_band(overall["sus"]["mean"]) if sus else None,
        "tlx_subscales": {name: _stats([q.tlx[name] for q in study.questionnaires]) for name in TLX_SUBSCALES},
        "tasks": _task_rows(study),
        "skipped_log_lines": list(study.skipped_lines),
        "superseded_questionnaires": list(study.superseded),
        "notes": list(study.notes),
    }
