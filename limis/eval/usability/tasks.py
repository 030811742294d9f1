"""Cutting one session's log events into tasks at the `task_start` / `task_end` markers, one `TaskRecord` each."""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from limis.eval.usability.records import TaskRecord, is_number

ACCEPT_ACTIONS = ("accept", "done")
MARKERS = ("task_start", "task_end")
WHOLE_SESSION = "session"


@dataclass
class _Span:
    task_id: str
    task: str
    start: float
    end: float
    timing: str
    commands: list[dict[str, Any]] = field(default_factory=list)


def session_tasks(session_id: str, events: list[dict[str, Any]]) -> tuple[list[TaskRecord], list[str]]:
    """(one record per task of the session, notes on markers that did not pair up, each naming the session)."""
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
        dice = next((float(c["dice"]) for c in reversed(up_to_accept) if is_number(c.get("dice"))), None)
    seconds = [float(c["seconds"]) for c in commands if is_number(c.get("seconds"))]
    return TaskRecord(
        participant=participant, session_id=session_id, task_id=span.task_id, task=span.task,
        start_time=float(span.start), seconds=float(span.end - span.start), timing=span.timing,
        n_interactions=len(commands), n_understood=understood, n_not_understood=len(commands) - understood,
        n_undo=sum(1 for c in commands if _control_action(c) == "undo"), accepted=bool(accepts),
        dice_at_acceptance=dice, mean_processing_seconds=round(statistics.fmean(seconds), 4) if seconds else None,
    )
