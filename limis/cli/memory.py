"""How glibc's allocator returns memory: lean for `limis segment` on an export runtime, its defaults elsewhere."""

from __future__ import annotations

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters (malloc.h)
GLIBC_MMAP_THRESHOLD = 128 * 1024  # glibc's initial mmap threshold, which its dynamic rule raises as blocks are freed


def return_freed_memory() -> bool:
    """Let glibc hand freed heap memory back to the system at once (a trim threshold of 0); False where it cannot.

    The mmap threshold goes back to 128 KiB and stays there (an explicit threshold stops glibc raising it), so
    every larger block is mapped and faulted in afresh. That is cheap where ONNX engines do the heavy work (their
    own allocators), and costly where torch does: on an AMD EPYC (2026-12-07) it made the torch cold query 1.7x
    slower (36.9 -> 62.6 s), a cached query 1.75x slower and edits 43 -> 74 ms. So only `limis segment` on an
    export runtime asks for it, for its peak memory (openvino 1,595-1,623 -> 1,435 MiB on the shared DICOM CT,
    evaluation/speed/RESULTS.md), and only in a process of its own (`limis.cli.main(own_process=True)`): the
    setting lasts as long as the process. Other C libraries lack `mallopt`: then nothing changes.
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        # The mmap threshold back at its start, as at process start: by the time a command runs, the imports may
        # have raised it, and blocks under it would stay in the heap.
        return bool(libc.mallopt(M_MMAP_THRESHOLD, GLIBC_MMAP_THRESHOLD)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 0))
    except (OSError, AttributeError):
        return False
