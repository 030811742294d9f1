"""The study's PNG plots: SUS per participant, NASA-TLX subscales, task time and interactions per task."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from limis.eval.usability.instruments import SUS_AVERAGE, TLX_SUBSCALES
from limis.eval.usability.records import Study


def write_plots(study: Study, summary: dict[str, Any], out: Path) -> dict[str, Path]:
    """Write the plots that have data into `out`; returns file name -> path of each plot written."""
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
