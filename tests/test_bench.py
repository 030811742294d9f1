"""The benchmark's bookkeeping (never its timings): the second query must encode nothing."""

from __future__ import annotations

from pathlib import Path

from limis.detect.registry import build_detector
from limis.imaging import load_image
from limis.imaging.phantom import make_phantom
from limis.pipeline.bench import run_benchmark


def test_bench_phases(tmp_path: Path, box_segmenter) -> None:
    paths = make_phantom(tmp_path)
    volume = load_image(paths["image"])
    detector = build_detector("oracle", volume=volume, labels=paths["labels"], label_map=paths["label_map"])
    report = run_benchmark(volume, detector, box_segmenter, ["kidney_left", "kidney_right"])
    first, second, naive = report["phases"]
    assert first["encoded_slices"] > 0 and second["encoded_slices"] == 0
    assert naive["encoded_slices"] > first["encoded_slices"]  # the naive loop re-encodes shared slices
    assert report["speedup_second_vs_first"] > 0 and report["encoder_batch_size"] == 1
