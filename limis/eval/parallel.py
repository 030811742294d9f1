"""Data-parallel evaluation through `accelerate` (one process per GPU or node), no home-made scheduler.

Without `accelerate launch` this is one process and the part file is the results file itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence, TypeVar

T = TypeVar("T")


def _state():
    try:
        import torch
        from accelerate import PartialState
    except ImportError:
        return None
    # On a machine without GPUs, accelerate only forms a (gloo) process group when told it is CPU work.
    return PartialState(cpu=not torch.cuda.is_available())


def process_share(items: Sequence[T], results: Path) -> tuple[list[T], Path]:
    """This process's items (every n-th) and the CSV part it writes."""
    state = _state()
    if state is None or state.num_processes == 1:
        return list(items), results
    part = results.with_name(f"{results.stem}.part{state.process_index}{results.suffix}")
    return list(items)[state.process_index :: state.num_processes], part


def merge_parts(results: Path) -> Path | None:
    """On the main process, after all processes finish, merge part files into `results`."""
    state = _state()
    if state is None or state.num_processes == 1:
        return results if results.exists() else None
    state.wait_for_everyone()
    if not state.is_main_process:
        return None
    parts = sorted(results.parent.glob(f"{results.stem}.part*{results.suffix}"))
    header, body = None, []
    for part in parts:
        lines = part.read_text().splitlines(keepends=True)
        if lines:
            header = header or lines[0]
            body.extend(lines[1:])
    if header:
        results.write_text(header + "".join(body))
    return results if results.exists() else None
