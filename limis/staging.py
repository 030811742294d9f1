"""Files that appear whole or not at all, even with several writers of the same file at once."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def temporary_beside(target: Path) -> Path:
    """A hidden, unused name in `target`'s folder (created there), unique to this caller.

    Nothing is created: the writer creates the file, so it gets the usual permissions (umask), not
    the owner-only mode of `tempfile.mkstemp`.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    return target.with_name(f".{target.name[:40]}.{uuid.uuid4().hex}.part")


@contextmanager
def replaced_on_success(target: Path) -> Iterator[Path]:
    """Yield a fresh temporary path beside `target` to write; it replaces `target` when the block succeeds.

    Each caller gets its own name, so two processes or threads writing the same cache entry never
    write into one file; the file moved last wins. A failed block leaves no temporary behind.
    """
    partial = temporary_beside(target)
    try:
        yield partial
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
