"""Training samples, embedding-grid geometry, the box-prior baseline and z-range logic (fast; real CT where needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from limis.detect.base import Detection
from limis.detect.body import body_extent, estimated_pixel_mm
from limis.eval.detection import box_iou
from limis.imaging.slice_image import box_from_mask
from limis.pipeline.grounded import boxes_meet, seed_runs
from limis.train.augment import AugmentConfig, augment, swap_sides
from limis.train.captions import caption_labels, caption_text

REPO = Path(__file__).resolve().parents[1]
MANIFEST = REPO / "evaluation" / "datasets" / "grounding_train.yaml"


@pytest.fixture(scope="module")
def train_samples(totalseg_dir):
    from limis.eval.datasets import load_manifest
    from limis.train.samples import manifest_samples

    return list(manifest_samples(load_manifest(MANIFEST), "train"))


def _by_name(sample, name):
    return {b.structure: b for b in sample.boxes()}.get(name)


def test_samples_carry_names_sides_and_patient_split(train_samples) -> None:
    from limis.eval.datasets import load_manifest

    assert len(train_samples) == 112 and {s.patient for s in train_samples} == {"ts_example"}
    test_patients = {c.patient for c in load_manifest(MANIFEST).split("test")}
    assert not test_patients & {s.patient for s in train_samples}
    sample = next(s for s in train_samples if _by_name(s, "kidney_left") and _by_name(s, "kidney_right"))
    left, right = _by_name(sample, "kidney_left"), _by_name(sample, "kidney_right")
    assert (left.laterality, right.laterality) == ("left", "right")
    # radiological display: the patient's left kidney is on the screen's right
    assert (left.box[0] + left.box[2]) > (right.box[0] + right.box[2])
    assert sample.pixel_mm == (3.0, 3.0) and 0.0 <= sample.pixels.min() and sample.pixels.max() <= 1.0


def test_caption_mixes_targets_with_absent_distractors() -> None:
    rng = np.random.default_rng(0)
    labels = caption_labels(["liver", "kidney_left"], ["liver", "kidney_left", "brain", "heart", "spleen"], rng, 2)
    assert {"liver", "kidney_left"} <= set(labels) and len(labels) == 4
    assert not {"liver", "kidney_left"} >= set(labels)
    assert caption_text(["kidney_left", "liver"]) == "left kidney . liver ."


def test_flip_swaps_patient_sides_with_the_image(train_samples) -> None:
    sample = next(s for s in train_samples if _by_name(s, "kidney_left"))
    flipped = augment(sample, np.random.default_rng(1), AugmentConfig(flip_prob=1.0, max_rotation_deg=0.0,
                                                                       scale_range=(1.0, 1.0), crop_fraction=0.0))
    assert flipped.flipped
    cols = sample.values.shape[1]
    before, after = _by_name(sample, "kidney_left").box, _by_name(flipped, "kidney_right").box
    assert after == (cols - 1 - before[2], before[1], cols - 1 - before[0], before[3])
    assert swap_sides({1: "kidney_left", 2: "liver"}) == {1: "kidney_right", 2: "liver"}


def test_augment_keeps_boxes_on_the_labels_and_spacing_honest(train_samples) -> None:
    sample = next(s for s in train_samples if _by_name(s, "liver"))
    moved = augment(sample, np.random.default_rng(3), AugmentConfig(scale_range=(1.3, 1.3)))
    liver = _by_name(moved, "liver")
    assert liver is not None and liver.box == box_from_mask(moved.structure_mask("liver"))
    assert moved.pixel_mm == pytest.approx((3.0 / 1.3, 3.0 / 1.3))
    assert moved.window.width != sample.window.width and not moved.flipped
    # physical liver area is preserved by the scale change (within rotation/crop/edge effects)
    area = lambda s: s.structure_mask("liver").sum() * s.pixel_mm[0] * s.pixel_mm[1]  # noqa: E731
    assert area(moved) == pytest.approx(area(sample), rel=0.25)


def test_embedding_grid_coordinates_and_heatmaps_map_back_to_the_display() -> None:
    """A 300 x 400 slice of 1 mm pixels: LiteMedSAM's input is 192 x 256 (cells of 1.5625 mm), padded below."""
    import torch

    from limis.detect.lite_grounding import coordinate_channels, heat_on_display, input_size
    from limis.train.lite_grounding_data import cell_occupancy

    pixels = np.zeros((300, 400), dtype=np.float32)
    pixels[100:200, 50:350] = 0.5  # a 100 x 300 mm "trunk" centred at row 149.5, column 199.5
    assert input_size(pixels.shape) == (192, 256)
    coords = coordinate_channels(pixels, (1.0, 1.0))
    assert coords.shape == (5, 64, 64)
    # cell (r, c) centres at input pixel 4r + 1.5 -> display (4r + 2) * 300/192 - 0.5; mm from the trunk centre / 200
    assert float(coords[1, 0, 0]) == pytest.approx((2 * 1.5625 - 0.5 - 199.5) / 200, abs=1e-4)
    assert float(coords[0, 10, 0]) == pytest.approx((42 * 1.5625 - 0.5 - 149.5) / 200, abs=1e-4)
    assert float(coords[3, 0, 63]) == pytest.approx(((254 * 1.5625 - 0.5) - 199.5) / 149.5, abs=1e-3)
    assert coords[4, :48].min() == 1 and coords[4, 48:].max() == 0  # rows 192..255 of the input are padding
    labels = np.zeros((300, 400), dtype=np.int16)
    labels[120:180, 100:200] = 7
    occupancy = cell_occupancy(labels, [[7], [3]])
    assert occupancy.shape == (2, 64, 64) and float(occupancy[1].sum()) == 0
    heat = heat_on_display(occupancy[:1].float(), pixels.shape)[0].numpy()
    assert heat.shape == pixels.shape
    assert box_iou(box_from_mask(heat > 0.5), (100, 120, 199, 179)) > 0.85
    assert estimated_pixel_mm(pixels)[0] == pytest.approx(345.0 / 299.0, rel=0.02)
    assert torch.isfinite(coords).all()


def test_body_extent_ignores_the_table() -> None:
    pixels = np.zeros((200, 200), dtype=np.float32)
    pixels[40:140, 50:150] = 0.5
    pixels[170, 10:190] = 1.0  # a thin table line below the body
    assert body_extent(pixels) == (40.0, 50.0, 139.0, 149.0)


def test_seed_runs_put_the_strongest_stretch_first() -> None:
    def hit(score):
        return Detection("liver", (0, 0, 1, 1), score, "liver")

    seeds = {0: hit(0.9), 20: hit(0.6), 22: hit(0.7), 26: hit(0.8), 28: hit(0.6), 40: hit(0.95)}
    assert sorted(seed_runs(seeds, 2)[0]) == [20, 22, 26, 28]
    assert seed_runs({}, 2) == []


def test_seed_runs_split_where_the_box_jumps() -> None:
    """A liver found on slices 8-20 on the patient's left, then on 22-30 on the right: two structures, not one."""
    left, right = (160.0, 55.0, 205.0, 100.0), (20.0, 100.0, 70.0, 185.0)
    seeds = {i: Detection("liver", left, 0.99, "liver") for i in range(8, 21, 2)}
    seeds |= {i: Detection("liver", right, 0.9, "liver") for i in range(22, 31, 2)}
    best, other = seed_runs(seeds, 2)  # 7 x 0.99 beats 5 x 0.9; no longer one run
    assert sorted(best) == list(range(8, 21, 2)) and sorted(other) == list(range(22, 31, 2))
    seeds |= {i: Detection("liver", right, 0.9, "liver") for i in range(32, 41, 2)}
    assert sorted(seed_runs(seeds, 2)[0]) == list(range(22, 41, 2))
    head, tail, whole = (96.0, 128.0, 113.0, 141.0), (164.0, 140.0, 192.0, 152.0), (89.0, 96.0, 199.0, 156.0)
    pancreas = {i: Detection("pancreas", head, 0.99, "pancreas") for i in range(16, 33, 2)}
    pancreas |= {34: Detection("pancreas", tail, 1.0, "pancreas")}  # one slice whose best box is the tail alone
    pancreas |= {i: Detection("pancreas", whole, 1.0, "pancreas") for i in range(36, 43, 2)}
    assert sorted(seed_runs(pancreas, 2)[0]) == list(range(16, 43, 2))
    drifting = {i: Detection("liver", (100.0 + 4 * i, 50.0, 140.0 + 4 * i, 90.0), 0.9, "liver") for i in range(0, 20, 2)}
    assert sorted(seed_runs(drifting, 2)[0]) == list(range(0, 20, 2))  # an organ moving a little per slice stays one run
    assert boxes_meet((0, 0, 10, 10), (14, 0, 24, 10), 0.25) and not boxes_meet((0, 0, 10, 10), (16, 0, 26, 10), 0.25)


def test_box_prior_places_boxes_relative_to_the_body(train_samples) -> None:
    from limis.eval.box_prior import BoxPriorDetector
    from limis.imaging.display import Plane, SliceGeometry, Window
    from limis.imaging.slice_image import SliceImage

    prior = BoxPriorDetector.fit(train_samples)
    assert {"liver", "spleen", "kidney_left"} <= set(prior.boxes)
    # a slice whose trunk is shifted and twice as wide gets a shifted, twice as wide liver box
    pixels = np.zeros((100, 200), dtype=np.float32)
    pixels[20:80, 40:160] = 1.0
    image = SliceImage(pixels, SliceGeometry((200, 100, 1), np.eye(4), Plane.AXIAL, 0), Window("unit", 1.0, 0.5), ("t",), "CT")
    liver = prior.detect(image, ["liver"])[0].box
    x0, y0, x1, y1 = prior.boxes["liver"]
    assert liver == pytest.approx((40 + x0 * 119, 20 + y0 * 59, 40 + x1 * 119, 20 + y1 * 59))
    # the liver lies on the patient's right = screen left in the radiological display
    assert (liver[0] + liver[2]) / 2 < 100


def test_grow_touched_sides_only_moves_sides_the_mask_reaches() -> None:
    from limis.pipeline.grounded import grow_touched_sides

    mask = np.zeros((100, 100), dtype=bool)
    mask[40:60, 20:50] = True  # reaches the box's right side (x = 49), not the others
    assert grow_touched_sides((10.0, 30.0, 49.0, 70.0), mask) == (10.0, 30.0, 49.0 + 39.0 * 0.15, 70.0)
    assert grow_touched_sides((10.0, 30.0, 80.0, 70.0), mask) == (10.0, 30.0, 80.0, 70.0)
    edge = np.zeros((100, 100), dtype=bool)
    edge[40:60, 0:30] = True  # touches x = 0, the image border: nothing to grow into
    assert grow_touched_sides((0.0, 30.0, 60.0, 70.0), edge) == (0.0, 30.0, 60.0, 70.0)


def test_lumen_gas_rises_anteriorly_and_the_wall_stays() -> None:
    from limis.train.augment import fill_lumens

    values = np.full((40, 40), 30.0, dtype=np.float32)
    labels = np.zeros((40, 40), dtype=np.int32)
    labels[10:30, 10:30] = 1
    filled = None
    for seed in range(50):  # draws until a gas-over-fluid filling happens
        candidate = fill_lumens(values, labels, {1: "stomach"}, np.random.default_rng(seed))
        if candidate.min() < -700:
            filled = candidate
            break
    assert filled is not None
    gas_rows = np.flatnonzero((filled < -700).any(axis=1))
    fluid_rows = np.flatnonzero(((filled >= 0) & (filled <= 30) & (labels == 1)).any(axis=1))
    assert gas_rows.min() == 12 and gas_rows.max() < fluid_rows.max()  # top = anterior on an axial display
    assert (filled[labels == 1][:1] == 30.0).all() and (filled[10, 10:30] == 30.0).all()  # the wall
    assert np.array_equal(fill_lumens(values, labels, {1: "liver"}, np.random.default_rng(0)), values)
