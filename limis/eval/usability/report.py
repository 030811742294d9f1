"""Writing a study's outputs: tasks.csv, questionnaires.csv, summary.json, plots and report.md; `run_usability`."""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from limis.eval.usability.instruments import SUS_ITEMS, TLX_ITEMS, TLX_SUBSCALES
from limis.eval.usability.load import load_study
from limis.eval.usability.markdown import report_markdown
from limis.eval.usability.plots import write_plots
from limis.eval.usability.records import Study, TaskRecord
from limis.eval.usability.summary import summarise


def write_report(study: Study, out_dir: str | Path) -> dict[str, Path]:
    """Write tasks.csv, questionnaires.csv, summary.json, PNG plots and report.md; returns name -> path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = summarise(study)
    written = {"tasks.csv": _write_tasks_csv(study, out / "tasks.csv"),
               "questionnaires.csv": _write_questionnaires_csv(study, out / "questionnaires.csv")}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    written["summary.json"] = out / "summary.json"
    written.update(write_plots(study, summary, out))
    (out / "report.md").write_text(report_markdown(summary, written), encoding="utf-8")
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
