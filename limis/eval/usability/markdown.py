"""The study's report.md: the summary's tables, the SUS band, data-quality notes and the definitions of each number."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from limis.eval.report import markdown_table
from limis.eval.usability.instruments import SUS_AVERAGE, SUS_BANDS


def _num(value: float | None, digits: int = 1) -> str | None:
    return None if value is None else f"{value:.{digits}f}"


def _stats_row(label: str, unit: str, stats: Mapping[str, Any], digits: int = 1) -> list[Any]:
    return [label, unit, stats["n"], *(_num(stats[k], digits) for k in ("mean", "median", "sd", "min", "max"))]


def report_markdown(summary: dict[str, Any], written: Mapping[str, Path]) -> str:
    """report.md from `summarise()`'s dict; `written` (output name -> path) names the plots to embed."""
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
