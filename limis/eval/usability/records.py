"""What a usability study holds once read: one record per task and per questionnaire, and the study around them."""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real
from typing import Any


class StudyLogWarning(UserWarning):
    """A log line was skipped, or task markers did not pair up; the report counts and lists these."""


@dataclass(frozen=True)
class TaskRecord:
    """One task of one session; see the `limis.eval.usability` docstring for each field's definition."""

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


def is_number(value: Any) -> bool:
    """A finite real number that is not a bool: what a log line's `time`, `dice` and `seconds` must be."""
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
