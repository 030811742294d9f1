"""Usability study analysis: interaction logs + SUS / raw NASA-TLX questionnaires -> CSVs, plots, report.

Inputs under one study folder (searched recursively):
- `*.jsonl` interaction logs written by `limis.interact.InteractionLog`, one JSON event per line;
  optional `task_start` / `task_end` events (keys `task_id`, `task`) mark the study's tasks.
- `*_questionnaire.json`: `participant`, `session_id`, `sus_1`..`sus_10` (integers 1-5) and
  `tlx_mental`, `tlx_physical`, `tlx_temporal`, `tlx_performance`, `tlx_effort`,
  `tlx_frustration` (0-100; performance runs from 0 = perfect to 100 = failure, as on the TLX sheet),
  optional `time` (unix seconds of the submission). The demo writes one file per submission.
- latest submission: each form holds both instruments (SUS and TLX); per participant only the
  latest form is analysed (largest `time`, a form without `time` counting as oldest, ties by file
  name); earlier ones are superseded, counted and listed in the report.

What each number means (the report repeats this):
- task: the events of one session between `task_start` and `task_end`; a session without markers
  is one task named "session". Commands outside every marked task are not counted (a note says how many).
- task seconds: time(task_end) - time(task_start) (`timing` = "markers"); a task with no
  `task_end`: its last command's time - time(task_start); a session without markers: last event
  time - first event time (both `timing` = "events").
- n_interactions: every logged utterance ("command" event), understood or not, undo/redo and
  accept/done included. n_understood: the edit is not null; n_not_understood: the edit is null
  (the parser did not understand it, or the session refused it). n_undo: Control "undo" commands.
- accepted: the task contains a Control "accept" or "done" command.
- dice_at_acceptance: at the task's last accept/done, the Dice on that event, or else on the latest
  earlier event of the task that has one; empty when not accepted or no reference was loaded.
- mean_processing_seconds: mean of the commands' `seconds` (LIMIS processing time, not user time).

Bad log lines (not JSON, not an object, no `event` or numeric `time`) are skipped with a
`StudyLogWarning` and counted in the report; a bad questionnaire stops with one `LimisError` line
naming the file and the item.
"""

from __future__ import annotations

import csv
import json
import math
import statistics
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from functools import lru_cache
from importlib import resources
from numbers import Integral, Real
from pathlib import Path
from typing import Any

from limis.errors import LimisError
from limis.eval.report import markdown_table


@lru_cache(maxsize=None)
def instrument(name: str) -> dict:
    """A shipped questionnaire ("sus", "nasa_tlx"): items, scale, anchors, scoring and sources, as its JSON."""
    return json.loads(resources.files("limis.eval").joinpath(f"questionnaires/{name}.json").read_text(encoding="utf-8"))


SUS_ITEMS = tuple(item["id"] for item in instrument("sus")["items"])
TLX_ITEMS = tuple(subscale["id"] for subscale in instrument("nasa_tlx")["subscales"])
TLX_SUBSCALES = tuple(item.removeprefix("tlx_") for item in TLX_ITEMS)
# Mean SUS over ~500 studies (Sauro 2011, "A Practical Guide to the System Usability Scale").
SUS_AVERAGE = 68.0
# Bangor, Kortum & Miller (2009), J. Usability Studies 4(3):114-123: mean SUS of the studies whose
# users chose each adjective; a score takes the highest adjective whose mean it reaches.
SUS_BANDS = ((85.5, "excellent"), (71.4, "good"), (50.9, "OK"), (-math.inf, "poor"))
ACCEPT_ACTIONS = ("accept", "done")
MARKERS = ("task_start", "task_end")
WHOLE_SESSION = "session"


class StudyLogWarning(UserWarning):
    """A log line was skipped, or task markers did not pair up; the report counts and lists these."""


# ---- the two instruments ----
def sus_score(answers: Sequence[int]) -> float:
    """System Usability Scale (Brooke 1996), 0-100 from ten answers in 1..5 (sus_1 first).

    Odd (positively worded) items score answer - 1, even (negatively worded) items 5 - answer;
    the sum (0-40) times 2.5 gives 0-100.
    """
    answers = list(answers)
    if len(answers) != len(SUS_ITEMS):
        raise LimisError(f"SUS needs 10 answers (sus_1..sus_10), got {len(answers)}.")
    for name, value in zip(SUS_ITEMS, answers):
        if isinstance(value, bool) or not isinstance(value, Integral) or not 1 <= value <= 5:
            raise LimisError(f"{name} = {value!r} is not an integer from 1 (strongly disagree) to 5 (strongly agree).")
    total = sum(a - 1 if i % 2 == 1 else 5 - a for i, a in enumerate(answers, start=1))
    return total * 2.5


def nasa_tlx_raw(ratings: Mapping[str, float]) -> float:
    """Raw (unweighted) NASA-TLX: the mean of the six subscale ratings, each 0-100 (Hart 2006).

    Keys are the subscale names ("mental", ..., "frustration"), with or without a "tlx_" prefix.
    """
    by_name: dict[str, tuple[str, Any]] = {}
    for key, value in ratings.items():
        name = key.removeprefix("tlx_")
        if name not in TLX_SUBSCALES:
            raise LimisError(f"'{key}' is not a NASA-TLX subscale (expected {', '.join(TLX_ITEMS)}).")
        by_name[name] = (key, value)
    missing = [f"tlx_{name}" for name in TLX_SUBSCALES if name not in by_name]
    if missing:
        raise LimisError(f"NASA-TLX rating {missing[0]} is missing (all six subscales are needed).")
    for key, value in by_name.values():
        if isinstance(value, bool) or not isinstance(value, Real) or not 0 <= value <= 100:
            raise LimisError(f"{key} = {value!r} is not a number from 0 to 100.")
    return sum(float(by_name[name][1]) for name in TLX_SUBSCALES) / len(TLX_SUBSCALES)


def sus_band(score: float) -> str:
    """Adjective band of a SUS score (Bangor, Kortum & Miller 2009): excellent/good/OK/poor."""
    return next(label for cut, label in SUS_BANDS if score >= cut)


# ---- records ----
@dataclass(frozen=True)
class TaskRecord:
    """One task of one session; see the module docstring for each field's definition."""

    participant: str
    session_id: str
    task_id: str
    task: str
    start_time: float  # unix seconds
    seconds: float
    timing: str  # "markers" | "events"
    n_interactions: int
    n_understood: int
    n_not_understood: int
    n_undo: int
    accepted: bool
    dice_at_acceptance: float | None
    mean_processing_seconds: float | None


@dataclass(frozen=True)
class QuestionnaireRecord:
    participant: str
    session_id: str | None
    sus: float
    tlx_raw: float
    sus_answers: tuple[int, ...]
    tlx: dict[str, float]  # subscale name (no prefix) -> 0-100
    source: str  # file, relative to the study folder
    time: float | None = None  # unix seconds of the submission, when the form records it


@dataclass(frozen=True)
class Study:
    tasks: tuple[TaskRecord, ...]
    questionnaires: tuple[QuestionnaireRecord, ...]
    log_files: int
    sessions: int
    skipped_lines: tuple[str, ...] = ()  # "file:line: why"
    notes: tuple[str, ...] = ()  # structural problems found while splitting tasks
    superseded: tuple[str, ...] = ()  # questionnaire files replaced by a later submission of the same participant


@dataclass
class _Span:
    task_id: str
    task: str
    start: float
    end: float
    timing: str
    commands: list[dict[str, Any]] = field(default_factory=list)


# ---- loading ----
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
        session_tasks, session_notes = _session_tasks(session_id, events)
        tasks += session_tasks
        notes += session_notes
    for note in notes:
        warnings.warn(note, StudyLogWarning, stacklevel=2)
    tasks.sort(key=lambda t: (t.participant, t.start_time))
    questionnaires, superseded = _latest_forms([_read_questionnaire(path, root) for path in questionnaire_paths])
    return Study(tuple(tasks), questionnaires, len(log_paths), len(sessions), tuple(skipped), tuple(notes),
                 superseded)


def _latest_forms(forms: list[QuestionnaireRecord]) -> tuple[tuple[QuestionnaireRecord, ...], tuple[str, ...]]:
    """(each participant's latest form, the sources of the earlier ones); see "latest submission" above."""
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
    if not _is_number(record.get("time")):
        return "no numeric 'time'"
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)


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
        time=float(when) if _is_number(when) else None,
    )


# ---- tasks ----
def _session_tasks(session_id: str, events: list[dict[str, Any]]) -> tuple[list[TaskRecord], list[str]]:
    events = sorted(events, key=lambda e: e["time"])  # stable: same-time lines keep file order
    participant = next((str(e["participant"]) for e in events if e.get("participant") not in (None, "")), "unknown")
    spans, notes = _spans(events)
    records = [_task_record(participant, session_id, span) for span in spans]
    return records, [f"session {session_id}: {note}" for note in notes]


def _spans(events: list[dict[str, Any]]) -> tuple[list[_Span], list[str]]:
    """Cut one session's time-sorted events into tasks at task_start/task_end markers."""
    if not any(e["event"] in MARKERS for e in events):
        commands = [e for e in events if e["event"] == "command"]
        if not commands:
            return [], []
        return [_Span(WHOLE_SESSION, "", events[0]["time"], events[-1]["time"], "events", commands)], []
    spans: list[_Span] = []
    notes: list[str] = []
    current: _Span | None = None
    outside = 0
    for event in events:
        kind = event["event"]
        if kind == "task_start":
            if current is not None:
                notes.append(f"task {current.task_id} has no task_end; timed to its last command")
                spans.append(current)
            task_id = str(event.get("task_id") or f"task_{len(spans) + 1}")
            current = _Span(task_id, str(event.get("task") or ""), event["time"], event["time"], "events")
        elif kind == "task_end":
            if current is None:
                notes.append("a task_end without a task_start was ignored")
                continue
            if event.get("task_id") not in (None, current.task_id):
                notes.append(f"task_end for {event.get('task_id')} closed open task {current.task_id}")
            current.end, current.timing = event["time"], "markers"
            spans.append(current)
            current = None
        elif kind == "command":
            if current is None:
                outside += 1
            else:
                current.commands.append(event)
                current.end = event["time"]
    if current is not None:
        notes.append(f"task {current.task_id} has no task_end; timed to its last command")
        spans.append(current)
    if outside:
        notes.append(f"{outside} command(s) outside every task_start..task_end were not counted")
    return spans, notes


def _control_action(event: Mapping[str, Any]) -> str | None:
    args = event.get("edit_args")
    if event.get("edit") == "Control" and isinstance(args, dict):
        return args.get("action")
    return None


def _task_record(participant: str, session_id: str, span: _Span) -> TaskRecord:
    commands = span.commands
    understood = sum(1 for c in commands if c.get("edit"))
    accepts = [i for i, c in enumerate(commands) if _control_action(c) in ACCEPT_ACTIONS]
    dice = None
    if accepts:
        up_to_accept = commands[: accepts[-1] + 1]
        dice = next((float(c["dice"]) for c in reversed(up_to_accept) if _is_number(c.get("dice"))), None)
    seconds = [float(c["seconds"]) for c in commands if _is_number(c.get("seconds"))]
    return TaskRecord(
        participant=participant, session_id=session_id, task_id=span.task_id, task=span.task,
        start_time=float(span.start), seconds=float(span.end - span.start), timing=span.timing,
        n_interactions=len(commands), n_understood=understood, n_not_understood=len(commands) - understood,
        n_undo=sum(1 for c in commands if _control_action(c) == "undo"), accepted=bool(accepts),
        dice_at_acceptance=dice, mean_processing_seconds=round(statistics.fmean(seconds), 4) if seconds else None,
    )


# ---- summary ----
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


# ---- outputs ----
def write_report(study: Study, out_dir: str | Path) -> dict[str, Path]:
    """Write tasks.csv, questionnaires.csv, summary.json, PNG plots and report.md; returns name -> path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = summarise(study)
    written = {"tasks.csv": _write_tasks_csv(study, out / "tasks.csv"),
               "questionnaires.csv": _write_questionnaires_csv(study, out / "questionnaires.csv")}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    written["summary.json"] = out / "summary.json"
    written.update(_write_plots(study, summary, out))
    (out / "report.md").write_text(_report_markdown(summary, written), encoding="utf-8")
    written["report.md"] = out / "report.md"
    return written


def run_usability(logdir: str | Path, out_dir: str | Path) -> dict[str, Any]:
    """The single entry point: load the study under `logdir`, write every output to `out_dir`.

    Returns `summarise()`'s dict plus "files": output name -> path (str).
    """
    study = load_study(logdir)
    written = write_report(study, out_dir)
    return {**summarise(study), "files": {name: str(path) for name, path in written.items()}}


def _write_tasks_csv(study: Study, path: Path) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=[f.name for f in fields(TaskRecord)])
        writer.writeheader()
        writer.writerows(asdict(t) for t in study.tasks)
    return path


def _write_questionnaires_csv(study: Study, path: Path) -> Path:
    header = ["participant", "session_id", "sus", "tlx_raw", *SUS_ITEMS, *TLX_ITEMS, "source"]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for q in study.questionnaires:
            writer.writerow([q.participant, q.session_id, q.sus, q.tlx_raw, *q.sus_answers,
                             *(q.tlx[name] for name in TLX_SUBSCALES), q.source])
    return path


def _write_plots(study: Study, summary: dict[str, Any], out: Path) -> dict[str, Path]:
    # Figure without pyplot renders through Agg by file extension: no global backend switch.
    from matplotlib.figure import Figure

    written = {}
    rated = [p for p in summary["participants"] if p["sus"] is not None]
    if rated:
        fig = Figure(figsize=(max(4.0, 0.6 * len(rated) + 2), 3.5))
        ax = fig.add_subplot()
        ax.bar([p["participant"] for p in rated], [p["sus"] for p in rated], color="tab:blue")
        ax.axhline(SUS_AVERAGE, color="tab:red", linestyle="--", label=f"average SUS {SUS_AVERAGE:g} (Sauro 2011)")
        ax.set(ylim=(0, 100), ylabel="SUS (0-100)", title=f"SUS per participant (n = {len(rated)})")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), fontsize="small", frameon=False)
        written["sus_per_participant.png"] = _save(fig, out / "sus_per_participant.png")
    if study.questionnaires:
        fig = Figure(figsize=(6, 3.5))
        ax = fig.add_subplot()
        labels = [name if name != "performance" else "performance\n(0 = perfect)" for name in TLX_SUBSCALES]
        _box_with_points(ax, [[q.tlx[name] for q in study.questionnaires] for name in TLX_SUBSCALES], labels)
        ax.set(ylim=(0, 100), ylabel="rating (0-100)",
               title=f"NASA-TLX subscales (n = {len(study.questionnaires)} questionnaires)")
        written["tlx_subscales.png"] = _save(fig, out / "tlx_subscales.png")
    if study.tasks:
        ids = [row["task_id"] for row in summary["tasks"]]
        fig = Figure(figsize=(max(6.0, 1.2 * len(ids) + 2), 3.8))
        fig.suptitle(f"Per task (n = {len(study.tasks)} tasks)")
        for position, (attr, label) in enumerate((("seconds", "task time (s)"), ("n_interactions", "interactions")), 1):
            ax = fig.add_subplot(1, 2, position)
            _box_with_points(ax, [[getattr(t, attr) for t in study.tasks if t.task_id == i] for i in ids], ids)
            ax.set(ylabel=label)
            ax.set_ylim(bottom=0)
        written["tasks.png"] = _save(fig, out / "tasks.png")
    return written


def _box_with_points(ax: Any, groups: list[list[float]], labels: Sequence[str]) -> None:
    """Box plot plus every value as a dot (small studies: the dots are the honest picture)."""
    ax.boxplot(groups)
    for position, values in enumerate(groups, start=1):
        ax.plot([position] * len(values), values, "o", color="tab:blue", alpha=0.6, markersize=4)
    ax.set_xticks(range(1, len(labels) + 1), list(labels), rotation=30, ha="right", fontsize="small")


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return path


def _num(value: float | None, digits: int = 1) -> str | None:
    return None if value is None else f"{value:.{digits}f}"


def _stats_row(label: str, unit: str, stats: Mapping[str, Any], digits: int = 1) -> list[Any]:
    return [label, unit, stats["n"], *(_num(stats[k], digits) for k in ("mean", "median", "sd", "min", "max"))]


def _report_markdown(summary: dict[str, Any], written: Mapping[str, Path]) -> str:
    counts, overall = summary["counts"], summary["overall"]
    blocks = [
        "# Usability study report",
        f"{counts['participants']} participants, {counts['sessions']} sessions in {counts['log_files']} log files, "
        f"{counts['tasks']} tasks ({counts['tasks_accepted']} accepted), {counts['questionnaires']} questionnaires "
        f"(latest per participant; {counts['questionnaires_superseded']} earlier submissions superseded); "
        f"{counts['skipped_log_lines']} unreadable log lines skipped.",
        "## Per participant",
        markdown_table(
            ["participant", "SUS", "SUS band", "raw TLX", "questionnaires", "tasks accepted / started",
             "median task time (s)", "median interactions per task", "mean Dice at acceptance", "n Dice"],
            [[p["participant"], _num(p["sus"]), p["sus_band"], _num(p["tlx_raw"]), p["n_questionnaires"],
              f"{p['tasks_accepted']} / {p['n_tasks']}", _num(p["median_task_seconds"]),
              _num(p["median_interactions_per_task"]), _num(p["mean_dice_at_acceptance"], 3), p["n_dice"]]
             for p in summary["participants"]]),
        "## Overall",
        markdown_table(
            ["measure", "unit of analysis", "n", "mean", "median", "SD", "min", "max"],
            [_stats_row("SUS (0-100)", "participant", overall["sus"]),
             _stats_row("raw NASA-TLX (0-100)", "participant", overall["tlx_raw"]),
             _stats_row("task time (s)", "task", overall["task_seconds"]),
             _stats_row("interactions per task", "task", overall["interactions_per_task"]),
             _stats_row("Dice at acceptance", "accepted task with reference", overall["dice_at_acceptance"], 3)]),
        _band_text(summary),
        "## NASA-TLX subscales",
        markdown_table(["subscale", "unit of analysis", "n", "mean", "median", "SD", "min", "max"],
                       [_stats_row(name, "questionnaire", s) for name, s in summary["tlx_subscales"].items()]),
        "## Per task",
        markdown_table(
            ["task id", "task", "n", "accepted", "median time (s)", "median interactions", "mean Dice at acceptance",
             "n Dice"],
            [[t["task_id"], t["task"], t["n"], t["accepted"], _num(t["seconds"]["median"]),
              _num(t["interactions"]["median"]), _num(t["dice_at_acceptance"]["mean"], 3),
              t["dice_at_acceptance"]["n"]] for t in summary["tasks"]]),
        "## Plots",
        "\n".join(f"![{name}]({name})" for name in written if name.endswith(".png")) or "No data to plot.",
        "## Data quality",
        _quality_text(summary),
        "## Definitions",
        _DEFINITIONS,
    ]
    return "\n\n".join(block.strip() for block in blocks) + "\n"


def _band_text(summary: Mapping[str, Any]) -> str:
    sus = summary["overall"]["sus"]
    cuts = ", ".join(f"{label} >= {cut}" for cut, label in SUS_BANDS[:-1]) + ", else poor"
    source = ("Bands: adjective ratings of Bangor, Kortum & Miller (2009, J. Usability Studies 4(3):114-123), "
              f"cut at each adjective's mean SUS ({cuts}). The plot's reference line {SUS_AVERAGE:g} is the "
              "average SUS over about 500 studies (Sauro 2011).")
    if summary["sus_band"] is None:
        return "No questionnaires: no SUS band. " + source
    return f"Mean SUS {sus['mean']:.1f} (n = {sus['n']} participants) is in the **{summary['sus_band']}** band. {source}"


def _quality_text(summary: Mapping[str, Any]) -> str:
    lines = [f"- skipped log lines: {len(summary['skipped_log_lines'])}\n"]
    lines += [f"  - {where}\n" for where in summary["skipped_log_lines"][:20]]
    if len(summary["skipped_log_lines"]) > 20:
        lines.append(f"  - ... and {len(summary['skipped_log_lines']) - 20} more\n")
    superseded = summary["superseded_questionnaires"]
    lines.append(f"- questionnaires superseded by a later submission of the same participant: {len(superseded)}\n")
    lines += [f"  - {source}\n" for source in superseded]
    lines.append(f"- task-marker notes: {len(summary['notes'])}\n")
    lines += [f"  - {note}\n" for note in summary["notes"]]
    return "".join(lines)


_DEFINITIONS = """\
- **SUS**: System Usability Scale (Brooke 1996); odd items score answer - 1, even items 5 - answer,
  sum x 2.5 (0-100, higher is better). A participant who submitted several questionnaires is scored
  on the latest (largest `time`); the earlier ones are counted as superseded.
- **raw NASA-TLX**: unweighted mean of the six subscales, 0-100 (higher is more workload;
  performance is rated 0 = perfect to 100 = failure).
- **task**: events between `task_start` and `task_end` of one session; a session without markers is
  one task named "session". **Task time**: task_end - task_start, else last command - task_start
  (tasks.csv `timing` = events), else last - first event of the session.
- **interactions**: every logged utterance, understood or not (undo, redo, accept and done
  included); tasks.csv splits them into understood / not understood and counts undos.
- **accepted**: the task contains an "accept" or "done" command. **Dice at acceptance**: Dice on the
  last accept/done event, or the latest earlier event of the task with a Dice; only tasks with a
  reference segmentation have one, so its n can be smaller than the number of tasks.
- **SD**: sample standard deviation (n - 1), shown from n = 2.
"""
