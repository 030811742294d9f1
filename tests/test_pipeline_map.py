"""Propagation guided by a heatmap detector's map: past the outermost seed, and away from another object in the box."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from limis.detect.base import Detection, DetectorTraits
from limis.detect.oracle import OracleDetector
from limis.imaging import load_image
from limis.imaging.display import display_slice
from limis.imaging.phantom import SHAPE, make_phantom
from limis.imaging.slice_image import box_from_mask
from limis.pipeline.grounded import GroundedPipeline, SegmentOptions
from limis.segment.base import Embedding, SegmentResult
from limis.segment.cache import EmbeddingCache

ORGAN, NEIGHBOUR = 1, 2
BRIGHT_HU, FAT_HU = 200.0, -80.0  # 0.9 and 0.2 in the abdomen window


class ObjectSegmenter:
    """Test double of a box-prompted segmenter: the largest bright object inside the box (whatever it is)."""

    name = "object-test-double"
    weights_path = None
    device = torch.device("cpu")

    def embed(self, slices):
        return [Embedding(features=torch.from_numpy(np.asarray(s)), original_size=tuple(s.shape),
                          input_size=tuple(s.shape)) for s in slices]

    def segment(self, embedding, prompts):
        bright = embedding.features.numpy() > 0.5
        results = []
        for prompt in prompts:
            x0, y0, x1, y1 = (int(round(v)) for v in prompt.box)
            inside = np.zeros_like(bright)
            inside[y0 : y1 + 1, x0 : x1 + 1] = bright[y0 : y1 + 1, x0 : x1 + 1]
            objects, count = ndimage.label(inside)
            if count:
                sizes = ndimage.sum(inside, objects, range(1, count + 1))
                mask = objects == 1 + int(np.argmax(sizes))
            else:
                mask = inside
            results.append(SegmentResult(mask=mask, score=1.0 if mask.any() else 0.0, logits=mask.astype("float32")))
        return results


class MapOracle(OracleDetector):
    """A heatmap detector's view of a labelled volume: seeds scanned every 2nd slice, only on slices `sure`; boxes
    around the labels `boxed`; a map of probability `maps[label]` on each label (None: a box-only detector)."""

    traits = DetectorTraits(understands_laterality=True)

    def __init__(self, labels, sure, boxed=(ORGAN,), maps=None) -> None:
        super().__init__(labels, {ORGAN: "liver"})
        self.sure, self.boxed, self.maps = sure, boxed, maps

    def candidate_slices(self, structure, plane_axis):
        return None

    def detect(self, image, structures):
        view = display_slice(self.labels, image.geometry.plane, image.geometry.index)
        box = box_from_mask(np.isin(view, self.boxed))
        if image.geometry.index not in self.sure or box is None:
            return []
        return [Detection(structure, box, 0.9, structure) for structure in structures]

    def support(self, images, structure):
        if self.maps is None:
            return None
        views = [display_slice(self.labels, image.geometry.plane, image.geometry.index) for image in images]
        return [sum(np.where(view == label, p, 0.0) for label, p in self.maps.items()).astype(np.float32)
                for view in views]


def bright_volume(tmp_path: Path, labels: np.ndarray):
    """The phantom's geometry with fat everywhere and bright labelled objects."""
    volume = load_image(make_phantom(tmp_path)["image"])
    array = np.where(labels > 0, BRIGHT_HU, FAT_HU).astype(np.float32)
    return dataclasses.replace(volume, array=array)


def covered(labelmap: np.ndarray) -> list[int]:
    return [int(i) for i in np.flatnonzero((labelmap == 1).any(axis=(0, 1)))]


def test_propagation_follows_the_map_past_the_outermost_seed(tmp_path: Path) -> None:
    """An organ's ends score below the seed score, yet the detector's map holds them: propagation goes on past the
    outermost seed while the mask lies in the map and stops where the organ ends; without the map (a box-only
    detector, or `extend_support=0`) it stops beside the seeds."""
    labels = np.zeros(SHAPE, dtype=np.uint16)
    labels[20:50, 20:50, 3:15] = ORGAN
    volume = bright_volume(tmp_path, labels)
    cache = EmbeddingCache(ObjectSegmenter())
    options = SegmentOptions(largest_component=False)

    def run(maps, **changes):
        detector = MapOracle(labels, sure=range(7, 11), maps=maps)
        return covered(GroundedPipeline(detector, cache).segment(
            volume, ["liver"], dataclasses.replace(options, **changes)).labelmap)

    assert run({ORGAN: 0.9}) == list(range(3, 15))
    assert run({ORGAN: 0.9}, extend_support=0.0) == list(range(7, 12))  # seeds 8 and 10, and one slice beyond
    assert run(None) == list(range(7, 12))


def test_a_mask_of_another_object_in_the_box_gives_way_to_the_maps_region(tmp_path: Path) -> None:
    """A detector box around the organ and a larger neighbour makes the segmenter take the neighbour; the map says
    where the organ is, so the slice is re-prompted with the box of the map's confident region the box reaches.
    A confident region the box does not reach (the other side's kidney) is never taken instead."""
    labels = np.zeros(SHAPE, dtype=np.uint16)
    labels[20:40, 20:40, 4:10] = ORGAN
    labels[20:45, 46:90, 4:10] = NEIGHBOUR  # larger: inside a box around both it is the segmenter's answer
    volume = bright_volume(tmp_path, labels)
    cache = EmbeddingCache(ObjectSegmenter())
    options = SegmentOptions(largest_component=False)
    organ = labels == ORGAN

    def mask(boxed, maps, **changes):
        detector = MapOracle(labels, sure=range(0, 14), boxed=boxed, maps=maps)
        return GroundedPipeline(detector, cache).segment(
            volume, ["liver"], dataclasses.replace(options, **changes)).labelmap == 1

    wide = (ORGAN, NEIGHBOUR)
    assert np.array_equal(mask(wide, {ORGAN: 0.9, NEIGHBOUR: 0.2}), organ)
    assert not (mask(wide, {ORGAN: 0.9, NEIGHBOUR: 0.2}, min_agreement=0.0) & organ).any()  # the neighbour, in silence
    # boxes on the organ alone, the neighbour even more confident: the mask stays on the organ
    assert np.array_equal(mask((ORGAN,), {ORGAN: 0.9, NEIGHBOUR: 0.95}), organ)
    assert np.array_equal(mask(wide, None), labels == NEIGHBOUR)  # a box-only detector: the segmenter's answer stands
