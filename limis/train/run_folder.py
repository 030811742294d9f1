"""A training run folder: run.json (config, versions), metrics.csv (one row per logged step), curves.png."""

from __future__ import annotations

import csv
import os
from pathlib import Path

from limis.eval.provenance import claim_run_folder


class TrainingRun:
    """Owns one run folder; `log` appends a metrics row (flushed), `plot` draws every numeric column."""

    def __init__(self, out_dir: str | Path, config: dict, models: tuple = ()) -> None:
        self.dir = Path(out_dir)
        claim_run_folder(self.dir, config, models)
        self.metrics_path = self.dir / "metrics.csv"
        self.checkpoints = self.dir / "checkpoints"

    def rows(self) -> list[dict[str, str]]:
        if not self.metrics_path.exists():
            return []
        with self.metrics_path.open(newline="") as handle:
            return list(csv.DictReader(handle))

    def log(self, row: dict) -> None:
        """Append one row; new columns rewrite the header (rows keep their values)."""
        rows = self.rows()
        fields = list(dict.fromkeys([k for r in rows for k in r] + list(row)))
        rows.append({k: row.get(k, "") for k in row})
        partial = self.metrics_path.with_suffix(".tmp")
        with partial.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            writer.writerows({k: r.get(k, "") for k in fields} for r in rows)
            handle.flush()
            os.fsync(handle.fileno())
        partial.replace(self.metrics_path)

    def truncate_after(self, step: int) -> None:
        """Drop rows logged after `step` (a resumed run re-logs them)."""
        kept = [r for r in self.rows() if int(r["step"]) <= step]
        self.metrics_path.unlink(missing_ok=True)
        for row in kept:
            self.log(row)

    def plot(self) -> Path | None:
        """curves.png: each numeric metric against step, one panel per metric."""
        rows = self.rows()
        columns = [k for k in (rows[0] if rows else {}) if k != "step"]
        series = {}
        for column in columns:
            points = [(int(r["step"]), float(r[column])) for r in rows if _is_number(r.get(column, ""))]
            if points:
                series[column] = points
        if not series:
            return None
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(len(series), 1, figsize=(6, 2.2 * len(series)), squeeze=False)
        for ax, (name, points) in zip(axes[:, 0], series.items()):
            ax.plot(*zip(*points), marker=".")
            ax.set_ylabel(name)
        axes[-1, 0].set_xlabel("step")
        fig.tight_layout()
        out = self.dir / "curves.png"
        fig.savefig(out, dpi=100)
        plt.close(fig)
        return out


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except (TypeError, ValueError):
        return False
