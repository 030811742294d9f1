"""Append-only CSV results that survive a killed run: each case's rows are flushed and fsynced."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Iterable, Sequence

from limis.errors import LimisError


class ResultsFile:
    """Rows keyed by (case, structure); rerunning skips keys already written."""

    def __init__(self, path: Path, fields: Sequence[str]) -> None:
        self.path = path
        self.fields = list(fields)
        self._drop_partial_last_line()
        self._check_header()

    def _check_header(self) -> None:
        """A file written with other columns (another LIMIS version) cannot be resumed: appending would misalign them."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        with self.path.open(newline="") as handle:
            header = next(csv.reader(handle), [])
        if header != self.fields:
            raise LimisError(f"{self.path} has the columns {','.join(header)}, not the {','.join(self.fields)} this "
                             "version writes: evaluate into a new --out folder (or move that file away).")

    def _drop_partial_last_line(self) -> None:
        """A run killed mid-write may leave a line without its newline: drop it, it is recomputed."""
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            self.path.write_bytes(data[: data.rfind(b"\n") + 1])

    def rows(self) -> list[dict[str, str]]:
        if not self.path.exists():
            return []
        with self.path.open(newline="") as handle:
            return list(csv.DictReader(handle))

    def done(self) -> set[tuple[str, str]]:
        return {(row["case"], row["structure"]) for row in self.rows()}

    def append(self, rows: Iterable[dict]) -> None:
        rows = list(rows)
        if not rows:
            return
        new = not self.path.exists() or self.path.stat().st_size == 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=self.fields)
            if new:
                writer.writeheader()
            writer.writerows({k: row.get(k, "") for k in self.fields} for row in rows)
            handle.flush()
            os.fsync(handle.fileno())
