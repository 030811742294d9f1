"""How glibc's allocator returns memory: lean for `limis segment` on an export runtime, its defaults elsewhere."""

from __future__ import annotations

M_TRIM_THRESHOLD = -1  # glibc mallopt parameter (malloc.h)


def return_freed_memory() -> bool:
    """Let glibc hand freed heap memory back to the system at once (a trim threshold of 0); False where it cannot.

    Any explicit threshold also fixes glibc's mmap threshold at 128 KiB, so every larger block is mapped and
    faulted in afresh. That is cheap where ONNX engines do the heavy work (their own allocators), and costly where
    torch does: on an AMD EPYC (2026-12-07) it made the torch cold query 1.7x slower (36.9 -> 62.6 s), a cached
    query 1.75x slower and edits 43 -> 74 ms. So only `limis segment` on an export runtime asks for it, for its peak
    memory (1,595-1,623 -> 1,456-1,479 MiB on the shared DICOM CT, evaluation/speed/RESULTS.md), and only in a
    process of its own (`limis.cli.main(own_process=True)`): the setting lasts as long as the process. Other C
    libraries lack `mallopt`: then nothing changes.
    """
    import ctypes
    import ctypes.util

    try:
        return bool(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt(M_TRIM_THRESHOLD, 0))
    except (OSError, AttributeError):
        return False
