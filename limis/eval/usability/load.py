"""Reading a study folder: every `*.jsonl` interaction log and `*_questionnaire.json` form under it."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from limis.errors import LimisError
from limis.eval.usability.instruments import SUS_ITEMS, TLX_ITEMS, TLX_SUBSCALES, nasa_tlx_raw, sus_score
from limis.eval.usability.records import QuestionnaireRecord, Study, StudyLogWarning, TaskRecord, is_number
from limis.eval.usability.tasks import session_tasks


def load_study(logdir: str | Path) -> Study:
    """Read every `*.jsonl` log and `*_questionnaire.json` under `logdir` (recursively)."""
    root = Path(logdir)
    if not root.is_dir():
        raise LimisError(f"Study folder {root} does not exist; pass the folder holding the *.jsonl logs.")
    log_paths = sorted(root.rglob("*.jsonl"))
    questionnaire_paths = sorted(root.rglob("*_questionnaire.json"))
    if not log_paths and not questionnaire_paths:
        raise LimisError(f"No *.jsonl logs or *_questionnaire.json files under {root}; nothing to analyse.")
    sessions: dict[str, list[dict[str, Any]]] = {}
    skipped: list[str] = []
    for path in log_paths:
        for event in _read_log(path, root, skipped):
            sessions.setdefault(str(event.get("session_id") or path.relative_to(root)), []).append(event)
    tasks: list[TaskRecord] = []
    notes: list[str] = []
    for session_id, events in sessions.items():
        found, session_notes = session_tasks(session_id, events)
        tasks += found
        notes += session_notes
    for note in notes:
        warnings.warn(note, StudyLogWarning, stacklevel=2)
    tasks.sort(key=lambda t: (t.participant, t.start_time))
    questionnaires, superseded = _latest_forms([_read_questionnaire(path, root) for path in questionnaire_paths])
    return Study(tuple(tasks), questionnaires, len(log_paths), len(sessions), tuple(skipped), tuple(notes),
                 superseded)


def _latest_forms(forms: list[QuestionnaireRecord]) -> tuple[tuple[QuestionnaireRecord, ...], tuple[str, ...]]:
    """(each participant's latest form, the sources of the earlier ones); see "latest submission" in the package docstring."""
    latest: dict[str, QuestionnaireRecord] = {}
    superseded = []
    for form in sorted(forms, key=lambda q: (q.time is not None, q.time or 0.0, q.source)):
        if form.participant in latest:
            superseded.append(latest[form.participant].source)
        latest[form.participant] = form
    return tuple(sorted(latest.values(), key=lambda q: q.participant)), tuple(sorted(superseded))


def _read_log(path: Path, root: Path, skipped: list[str]) -> list[dict[str, Any]]:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as error:
        raise LimisError(f"Cannot read log {path}: {error.strerror or error}.") from None
    events = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            problem = _event_problem(record)
        except json.JSONDecodeError:
            problem = "not valid JSON"
        if problem:
            where = f"{path.relative_to(root)}:{number}: {problem}"
            skipped.append(where)
            warnings.warn(f"skipped log line {where}", StudyLogWarning, stacklevel=3)
        else:
            events.append(record)
    return events


def _event_problem(record: Any) -> str | None:
    if not isinstance(record, dict):
        return "not a JSON object"
    if not isinstance(record.get("event"), str):
        return "no 'event'"
    if not is_number(record.get("time")):
        return "no numeric 'time'"
    return None


def _read_questionnaire(path: Path, root: Path) -> QuestionnaireRecord:
    source = str(path.relative_to(root))
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise LimisError(f"{source}: not a readable JSON file ({type(error).__name__}); fix or remove it.") from None
    if not isinstance(data, dict):
        raise LimisError(f"{source}: expected a JSON object with participant, sus_1..sus_10 and tlx_* items.")
    for item in ("participant", *SUS_ITEMS, *TLX_ITEMS):
        if data.get(item) in (None, ""):
            raise LimisError(f"{source}: item '{item}' is missing.")
    try:
        answers = [data[item] for item in SUS_ITEMS]
        sus = sus_score(answers)
        ratings = {item: data[item] for item in TLX_ITEMS}
        tlx_raw = nasa_tlx_raw(ratings)
    except LimisError as error:
        raise LimisError(f"{source}: {error}") from None
    session_id, when = data.get("session_id"), data.get("time")
    return QuestionnaireRecord(
        participant=str(data["participant"]), session_id=None if session_id is None else str(session_id),
        sus=sus, tlx_raw=tlx_raw, sus_answers=tuple(int(a) for a in answers),
        tlx={name: float(ratings[f"tlx_{name}"]) for name in TLX_SUBSCALES}, source=source,
        time=float(when) if is_number(when) else None,
    )
