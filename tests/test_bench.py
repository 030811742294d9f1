"""The benchmark's bookkeeping (never its timings): the second query encodes nothing, changed masks show."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch

from limis.eval.bench import agreement, child_peak, run_benchmark
from limis.imaging import load_image
from limis.imaging.phantom import make_phantom
from limis.pipeline.grounded import VolumeSegmentation
from limis.pipeline.registry import build_detector


class ShrinkingSegmenter:
    """The box test double with one pixel row less: a "runtime" whose masks differ from the reference's."""

    name, weights_path, device = "shrinking-test-double", None, torch.device("cpu")

    def __init__(self, inner) -> None:
        self.inner = inner

    def embed(self, slices):
        return self.inner.embed(slices)

    def segment(self, embedding, prompts):
        results = self.inner.segment(embedding, prompts)
        for result in results:
            rows = result.mask.any(axis=1).nonzero()[0]
            if rows.size > 1:
                result.mask[rows[-1]] = False
        return results


def test_bench_phases(tmp_path: Path, box_segmenter) -> None:
    paths = make_phantom(tmp_path)
    volume = load_image(paths["image"])

    def oracle(cache):
        return build_detector("oracle", volume=volume, labels=paths["labels"], label_map=paths["label_map"])

    report = run_benchmark(volume, oracle, {"torch": box_segmenter, "other": ShrinkingSegmenter(box_segmenter)},
                           ["liver", "kidney_left"], edits=6)
    cold_torch, cold_other, cached = report["phases"]
    assert cold_torch["encoded_slices"] > 0 and cold_other["encoded_slices"] == cold_torch["encoded_slices"]
    assert cached["runtime"] == "other" and cached["encoded_slices"] == 0  # the second query encodes nothing
    assert report["dice_vs_torch"]["torch"] == {"liver": 1.0, "kidney_left": 1.0}
    assert 0.5 < report["dice_vs_torch"]["other"]["liver"] < 1.0  # the changed masks show up
    assert report["edit_ms"]["count"] == 6 and report["found"]["other"] == ["liver", "kidney_left"]


def test_agreement_counts_both_empty_as_equal() -> None:
    empty = np.zeros((4, 4, 2), dtype=np.uint16)
    one = empty.copy()
    one[1:3, 1:3, 0] = 1
    same = agreement(VolumeSegmentation(empty, {1: "liver"}), VolumeSegmentation(empty, {1: "liver"}))
    missed = agreement(VolumeSegmentation(one, {1: "liver"}), VolumeSegmentation(empty, {1: "liver"}))
    assert same == {"liver": 1.0} and missed == {"liver": 0.0}


class TensorEncoder:
    """An encoder test double whose embedding is the slice's pixel sum, `seconds` per call."""

    name, weights_path, device = "tensor-test-double", None, torch.device("cpu")

    def __init__(self, seconds: float = 0.0) -> None:
        self.seconds = seconds

    def embed(self, slices):
        from limis.segment.base import Embedding

        time.sleep(self.seconds)
        return [Embedding(torch.tensor([float(s.sum())]), tuple(s.shape), tuple(s.shape)) for s in slices]


def phantom_slices(folder: Path, count: int) -> list:
    from limis.imaging.display import CT_WINDOWS, Plane
    from limis.pipeline.slices import slice_image

    volume = load_image(make_phantom(folder)["image"])
    return [slice_image(volume, Plane.AXIAL, i, CT_WINDOWS["abdomen"]) for i in range(count)]


def test_disk_cache_serves_any_position_and_survives_a_new_process(tmp_path: Path) -> None:
    """Entries found on disk in the middle of a multi-slice request (regression: list.remove on arrays)."""
    from limis.segment.cache import EmbeddingCache

    images = phantom_slices(tmp_path / "p", 4)
    EmbeddingCache(TensorEncoder(), disk_dir=tmp_path / "disk").get_many([images[1], images[3]])
    reopened = EmbeddingCache(TensorEncoder(), disk_dir=tmp_path / "disk")
    found = reopened.get_many(images)
    assert len(found) == 4 and reopened.misses == 2 and reopened.hits == 2
    for image, embedding in zip(images, found):
        assert float(embedding.features) == pytest.approx(float(image.pixels.sum()), rel=1e-6)
    reopened.release()  # memory emptied, files kept: the next request reads them back without encoding
    assert len(reopened) == 0 and len(reopened.get_many(images)) == 4 and reopened.misses == 2


def test_two_caches_on_one_folder_encode_each_slice_once_between_them(tmp_path: Path) -> None:
    """Two demo sessions or test workers asking for one scan's slices at once split them: each slice is encoded
    once in all (each cache encoding all 8 was the behaviour before), and both get every slice's own embedding."""
    import threading

    from limis.segment.cache import EmbeddingCache

    images = phantom_slices(tmp_path / "p", 8)
    caches = [EmbeddingCache(TensorEncoder(seconds=0.1), disk_dir=tmp_path / "disk") for _ in range(2)]
    found: dict[int, list] = {}
    start = threading.Barrier(2)

    def ask(which: int) -> None:
        start.wait()
        found[which] = caches[which].get_many(images)

    threads = [threading.Thread(target=ask, args=(which,)) for which in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(found) == [0, 1]
    assert caches[0].misses + caches[1].misses == 8 and min(c.misses for c in caches) > 0
    assert all(c.hits + c.misses == 8 for c in caches)
    for embeddings in found.values():
        assert [float(e.features) for e in embeddings] == pytest.approx([float(im.pixels.sum()) for im in images])


def test_a_child_peak_is_its_own_not_the_parents() -> None:
    """A 1 GiB parent and a child that holds ~200 MiB: the child's peak is about 200 MiB (the kernel's ru_maxrss of
    children reported the parent's 1 GiB for a child started by vfork)."""
    import sys

    parent = np.ones(2**27)  # 1 GiB resident in this process
    holds = "import time, numpy; a = numpy.ones(25 * 2**20); time.sleep(0.5)"
    peak = child_peak([sys.executable, "-c", holds])
    assert peak.exit_code == 0 and 190 < peak.peak_mib < 600, peak
    assert 190 < peak.private_mib <= peak.peak_mib, peak  # numpy's 200 MiB are anonymous memory
    assert parent.sum() > 0
