"""Speed and memory of the 3D query per encoder runtime, a cached second query and language edits.

Timings are wall-clock on this machine; compare only ratios from one run. Peak memory is the
process's resident-set high-water mark above its level at the start of each phase, sampled
every 10 ms (torch's CPU allocations are invisible to tracemalloc). Masks of every runtime are
compared with the first runtime's (torch fp32), so a faster runtime that changes the answer shows.
"""

from __future__ import annotations

import statistics
import threading
import time
from dataclasses import asdict, dataclass
from typing import Callable, Mapping, Sequence

import psutil

from limis.eval.metrics import dice
from limis.imaging.volume import Volume
from limis.pipeline.grounded import GroundedPipeline, SegmentOptions, VolumeSegmentation
from limis.segment.cache import EmbeddingCache

DetectorFactory = Callable[[EmbeddingCache], object]  # builds the detector over one runtime's cache
EDITS = ("bigger", "smaller")  # a language edit re-runs only the prompt encoder and mask decoder


@dataclass(frozen=True)
class PhaseResult:
    phase: str
    runtime: str
    seconds: float
    peak_rss_mib: float
    encoded_slices: int


def _measure(phase: str, runtime: str, run: Callable[[], int]) -> PhaseResult:
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
    return PhaseResult(phase, runtime, seconds, (peak[0] - start_rss) / 2**20, encoded)


def _query(pipeline: GroundedPipeline, volume: Volume, structures: Sequence[str], options: SegmentOptions,
           answers: list[VolumeSegmentation]) -> Callable[[], int]:
    def run() -> int:
        before = pipeline.cache.misses
        answers.append(pipeline.segment(volume, structures, options))
        return pipeline.cache.misses - before

    return run


def edit_latency_ms(volume: Volume, cache: EmbeddingCache, detector, structure: str, edits: int) -> list[float]:
    """Milliseconds of each of `edits` language edits on the slice where `structure` was found."""
    from limis.interact.session import Session

    session = Session(volume, cache, detector=detector)
    session.apply(structure.replace("_", " "))
    if session.mask(structure) is None:
        return []
    times = []
    for turn in range(edits):
        began = time.perf_counter()
        session.apply(EDITS[turn % len(EDITS)])
        times.append(1000.0 * (time.perf_counter() - began))
    return times


def run_benchmark(volume: Volume, detector_for: DetectorFactory, segmenters: Mapping[str, object],
                  structures: Sequence[str], options: SegmentOptions = SegmentOptions(), edits: int = 20) -> dict:
    """Cold query per runtime (the first is the reference), then a cached query and edits on the last one."""
    phases, answers, cache, detector = [], {}, None, None
    for runtime, segmenter in segmenters.items():
        cache = EmbeddingCache(segmenter)
        detector = detector_for(cache)
        found: list[VolumeSegmentation] = []
        query = _query(GroundedPipeline(detector, cache), volume, structures, options, found)
        phases.append(_measure("cold query", runtime, query))
        answers[runtime] = found[0]
    fastest = list(segmenters)[-1]
    phases.append(_measure("second query (cached embeddings)", fastest,
                           _query(GroundedPipeline(detector, cache), volume, structures, options, [])))
    latencies = edit_latency_ms(volume, cache, detector, structures[0], edits)
    cold = {p.runtime: p.seconds for p in phases if p.phase == "cold query"}
    reference = list(segmenters)[0]
    return {
        "phases": [asdict(p) for p in phases],
        "cold_speedup_vs_" + reference: {r: cold[reference] / max(s, 1e-9) for r, s in cold.items()},
        "cached_speedup_vs_cold": cold[fastest] / max(phases[-1].seconds, 1e-9),
        "edit_ms": {"structure": structures[0], "count": len(latencies),
                    "median": statistics.median(latencies) if latencies else None,
                    "max": max(latencies) if latencies else None},
        "dice_vs_" + reference: {r: agreement(answers[reference], answer) for r, answer in answers.items()},
        "found": {r: [row.structure for row in answer.results if row.found] for r, answer in answers.items()},
    }


def agreement(reference: VolumeSegmentation, other: VolumeSegmentation) -> dict[str, float]:
    """3D Dice per structure between two runs' labelmaps (1.0 when both leave it empty)."""
    scores = {}
    for label_id, name in reference.labels.items():
        mine, theirs = reference.labelmap == label_id, other.labelmap == label_id
        scores[name] = 1.0 if not mine.any() and not theirs.any() else float(dice(theirs, mine))
    return scores


@dataclass(frozen=True)
class ChildPeak:
    """Memory of one child process: its resident high-water mark and the most private memory seen in it (MiB).

    `private_mib` is the largest RssAnon of the polls (a lower bound of the true peak); the rest of `peak_mib` is
    file-backed pages (shared libraries, mapped weights) that the page cache shares and can drop.
    """

    peak_mib: float
    private_mib: float
    exit_code: int


def segment_command_peak(arguments: Sequence[str]) -> ChildPeak:
    """Peak memory and exit code of one `limis segment ...` run in a fresh process."""
    import sys

    return child_peak([sys.executable, "-m", "limis.cli", "segment", *arguments])


def child_peak(command: Sequence[str], poll_s: float = 0.02) -> ChildPeak:
    """Peak memory of a child process, polled until it exits.

    The child's own high-water mark (Linux: VmHWM of /proc/PID/status; elsewhere its resident set). Not the
    kernel's ru_maxrss of children: a child that Python's subprocess starts by vfork inherits the parent's
    high-water mark there, which made benches before 2026-12-04 report the bench's own size.
    """
    import subprocess

    child = subprocess.Popen(list(command), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    watched, peak_kib, private_kib = psutil.Process(child.pid), 0, 0
    while child.poll() is None:
        high, private = _memory_kib(watched)
        peak_kib, private_kib = max(peak_kib, high), max(private_kib, private)
        time.sleep(poll_s)
    return ChildPeak(peak_kib / 1024.0, private_kib / 1024.0, child.returncode)


def _memory_kib(process: psutil.Process) -> tuple[int, int]:
    """The process's resident high-water mark and its private resident memory, in KiB (0, 0 once it has exited)."""
    try:
        with open(f"/proc/{process.pid}/status") as status:
            fields = dict(line.split(":", 1) for line in status if line.startswith(("VmHWM:", "RssAnon:")))
        if len(fields) < 2:
            return 0, 0  # a zombie has no memory lines
        return int(fields["VmHWM"].split()[0]), int(fields["RssAnon"].split()[0])
    except FileNotFoundError:  # no /proc (not Linux): the resident set, all of it counted as private
        try:
            rss = process.memory_info().rss // 1024
        except psutil.Error:
            return 0, 0
        return rss, rss
