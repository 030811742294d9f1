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

from limis.eval.usability.instruments import (
    SUS_AVERAGE,
    SUS_BANDS,
    SUS_ITEMS,
    TLX_ITEMS,
    TLX_SUBSCALES,
    instrument,
    nasa_tlx_raw,
    sus_band,
    sus_score,
)
from limis.eval.usability.load import load_study
from limis.eval.usability.records import QuestionnaireRecord, Study, StudyLogWarning, TaskRecord
from limis.eval.usability.report import run_usability, write_report
from limis.eval.usability.summary import summarise

__all__ = [
    "SUS_AVERAGE",
    "SUS_BANDS",
    "SUS_ITEMS",
    "TLX_ITEMS",
    "TLX_SUBSCALES",
    "QuestionnaireRecord",
    "Study",
    "StudyLogWarning",
    "TaskRecord",
    "instrument",
    "load_study",
    "nasa_tlx_raw",
    "run_usability",
    "summarise",
    "sus_band",
    "sus_score",
    "write_report",
]
