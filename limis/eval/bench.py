"""Speed and memory of a full 3D query, a second query on cached embeddings, and the naive loop.

Timings are wall-clock on this machine; compare only ratios from one run. Peak memory is the
process's resident-set high-water mark above its level at the start of each phase, sampled
every 10 ms (torch's CPU allocations are invisible to tracemalloc).
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import psutil

from limis.imaging.volume import Volume
from limis.pipeline.grounded import GroundedPipeline, SegmentOptions
from limis.segment.cache import EmbeddingCache


@dataclass(frozen=True)
class PhaseResult:
    phase: str
    seconds: float
    peak_rss_mib: float
    encoded_slices: int


def _measure(phase: str, run: Callable[[], int]) -> PhaseResult:
    process = psutil.Process()
    start_rss = process.memory_info().rss
    peak = [start_rss]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], process.memory_info().rss)
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    began = time.perf_counter()
    encoded = run()
    seconds = time.perf_counter() - began
    done.set()
    sampler.join()
    return PhaseResult(phase, seconds, (peak[0] - start_rss) / 2**20, encoded)


def run_benchmark(volume: Volume, detector, segmenter, structures: Sequence[str],
                  options: SegmentOptions = SegmentOptions()) -> dict:
    """Three phases on one volume; returns their results and the speed ratios."""
    cache = EmbeddingCache(segmenter)
    cached = GroundedPipeline(detector, cache)

    def query() -> int:
        before = cache.misses
        cached.segment(volume, structures, options)
        return cache.misses - before

    def naive() -> int:
        # the naive loop: a fresh cache per structure and one slice per encoder call
        encoded = 0
        for structure in structures:
            fresh = EmbeddingCache(segmenter, batch_size=1)
            GroundedPipeline(detector, fresh).segment(volume, [structure], options)
            encoded += fresh.misses
        return encoded

    first = _measure(f"first query (cold, encoder batch {cache.batch_size})", query)
    second = _measure("second query (cached embeddings)", query)
    loop = _measure("naive loop (re-encode per query)", naive)
    return {
        "phases": [asdict(p) for p in (first, second, loop)],
        "speedup_second_vs_first": first.seconds / max(second.seconds, 1e-9),
        "speedup_second_vs_naive": loop.seconds / max(second.seconds, 1e-9),
        "speedup_first_vs_naive": loop.seconds / max(first.seconds, 1e-9),
        "encoder_batch_size": cache.batch_size,
    }
