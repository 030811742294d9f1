"""Interaction log: one JSON line per event, flushed at once, no patient identifiers."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any


class InteractionLog:
    """Appends study events to a JSONL file; `session_id` ties a session's lines together."""

    def __init__(self, path: str | Path, session_id: str | None = None, participant: str | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.session_id = session_id or uuid.uuid4().hex[:12]
        self.participant = participant

    def write(self, event: dict[str, Any]) -> None:
        record = {"session_id": self.session_id, "participant": self.participant, "time": time.time(), **event}
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, default=_plain) + "\n")
            handle.flush()


def _plain(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)
