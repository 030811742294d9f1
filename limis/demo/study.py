"""Study mode: participant ids, the task list, per-task timing and questionnaire files.

Files live in the study log folder: `<participant>_<session>.jsonl` (one line per command, plus
`task_start` / `task_end` markers with `task_id`) and one `<participant>_<session>_<n>_questionnaire.json`
per submission (flat `sus_1`..`sus_10`, `tlx_*` keys; never overwritten): the formats `limis eval usability`
reads. No patient identifiers.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

from limis.demo.questionnaire import SUS_ITEMS, TLX_SUBSCALES
from limis.errors import LimisError
from limis.interact.log import InteractionLog


@dataclass(frozen=True)
class Task:
    id: str
    text: str


DEFAULT_TASKS = (
    Task("task_1", "Segment the left kidney (the patient's left) on a slice where it is clearly visible."),
    Task("task_2", "Segment the spleen, then refine it until you are satisfied with the outline."),
    Task("task_3", "Segment the liver on two neighbouring slices and accept the result."),
)


def load_tasks(path: Path | None) -> tuple[Task, ...]:
    """Tasks from a JSON/YAML file (a list of strings or of {id, text}, or {"tasks": [...]}), else defaults."""
    if path is None:
        return DEFAULT_TASKS
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))  # YAML also reads JSON
    except (OSError, yaml.YAMLError) as error:
        raise LimisError(f"{path}: not a readable task file ({type(error).__name__}); give a JSON/YAML list of tasks.") from error
    entries = data.get("tasks") if isinstance(data, dict) else data
    if not isinstance(entries, list) or not entries:
        raise LimisError(f"{path}: expected a non-empty list of tasks (strings or {{id, text}}).")
    tasks = []
    for number, entry in enumerate(entries, start=1):
        if isinstance(entry, str):
            tasks.append(Task(f"task_{number}", entry))
        elif isinstance(entry, dict) and entry.get("text"):
            tasks.append(Task(str(entry.get("id") or f"task_{number}"), str(entry["text"])))
        else:
            raise LimisError(f"{path}: task {number} needs a text; write it as a string or {{id: ..., text: ...}}.")
    return tuple(tasks)


def check_participant(text: str) -> str:
    """A participant id usable in file names: 1-32 letters, digits, '-' or '_' (no names, please)."""
    participant = (text or "").strip()
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,32}", participant):
        raise LimisError("participant id must be 1-32 letters, digits, '-' or '_' (a code such as P07, not a name).")
    return participant


def open_log(log_dir: Path, participant: str, session_id: str) -> InteractionLog:
    """The JSONL interaction log for one participant in one browser session."""
    return InteractionLog(Path(log_dir) / f"{participant}_{session_id}.jsonl", session_id=session_id,
                          participant=participant)


def questionnaire_record(sus: list, tlx: list) -> dict[str, float]:
    """Answers keyed sus_1..sus_10 (int 1-5) and tlx_mental..tlx_frustration (0-100).

    Checked with `limis.eval.usability`'s own instrument functions, so a saved form always analyses.
    """
    from limis.eval.usability import nasa_tlx_raw, sus_score

    missing = [item for (item, _), value in zip(SUS_ITEMS, sus) if value in (None, "")]
    if missing or len(sus) != len(SUS_ITEMS):
        raise LimisError(f"please answer every SUS statement (missing: {', '.join(missing) or 'some'}).")
    try:
        answers = {item: int(value) for (item, _), value in zip(SUS_ITEMS, sus)}
        ratings = {item: float(value) for (item, *_), value in zip(TLX_SUBSCALES, tlx)}
    except (TypeError, ValueError):
        raise LimisError("every answer must be a number: SUS 1-5, NASA-TLX 0-100; please check the form.") from None
    if len(ratings) != len(TLX_SUBSCALES):
        raise LimisError(f"please rate all {len(TLX_SUBSCALES)} NASA-TLX subscales.")
    sus_score(list(answers.values()))
    nasa_tlx_raw(ratings)
    return {**answers, **ratings}


def write_questionnaire(log_dir: Path, participant: str, session_id: str, record: dict[str, float]) -> Path:
    """Write a new `<participant>_<session>_<n>_questionnaire.json` (flat item keys, `time`, `submission` n).

    Append-only: a later submission gets the next n and never replaces an earlier file; the analysis
    (`limis.eval.usability.load_study`) uses each participant's latest and counts the rest as superseded.
    """
    folder = Path(log_dir)
    folder.mkdir(parents=True, exist_ok=True)
    payload = {"participant": participant, "session_id": session_id, "time": time.time(), **record}
    number = 1
    while True:
        path = folder / f"{participant}_{session_id}_{number}_questionnaire.json"
        try:
            with path.open("x", encoding="utf-8") as handle:  # "x": fails instead of overwriting
                handle.write(json.dumps({**payload, "submission": number}, indent=2))
            return path
        except FileExistsError:
            number += 1
