"""Files that appear whole or not at all, even with several writers of the same file at once."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def replaced_on_success(target: Path) -> Iterator[Path]:
    """Yield a fresh temporary path beside `target` to write; it replaces `target` when the block succeeds.

    Each caller gets its own name, so two processes or threads writing the same cache entry never
    write into one file; the file moved last wins. A failed block leaves no temporary behind.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{target.name[:40]}.", suffix=".part", dir=target.parent)
    os.close(handle)
    partial = Path(name)
    try:
        yield partial
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
