"""The benchmark's bookkeeping (never its timings): the second query must encode nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

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


def test_disk_cache_serves_any_position_and_survives_a_new_process(tmp_path: Path) -> None:
    """Entries found on disk in the middle of a multi-slice request (regression: list.remove on arrays)."""
    from limis.imaging.display import CT_WINDOWS, Plane
    from limis.pipeline.slices import slice_image
    from limis.segment.cache import EmbeddingCache

    import torch

    from limis.segment.base import Embedding

    class TensorEncoder:
        name, weights_path = "tensor-test-double", None

        def embed(self, slices):
            return [Embedding(torch.tensor([float(s.sum())]), tuple(s.shape), tuple(s.shape)) for s in slices]

    volume = load_image(make_phantom(tmp_path / "p")["image"])
    images = [slice_image(volume, Plane.AXIAL, i, CT_WINDOWS["abdomen"]) for i in range(4)]
    EmbeddingCache(TensorEncoder(), disk_dir=tmp_path / "disk").get_many([images[1], images[3]])
    reopened = EmbeddingCache(TensorEncoder(), disk_dir=tmp_path / "disk")
    found = reopened.get_many(images)
    assert len(found) == 4 and reopened.misses == 2 and reopened.hits == 2
    for image, embedding in zip(images, found):
        assert float(embedding.features) == pytest.approx(float(image.pixels.sum()), rel=1e-6)
