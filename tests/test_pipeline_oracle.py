"""Golden tier: oracle boxes + real LiteMedSAM on the shared CT, in RAS and LPS copies."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from limis.detect.base import DetectorTraits
from limis.detect.oracle import OracleDetector
from limis.imaging import load_image
from limis.imaging.align import load_labelmap_on
from limis.imaging.display import display_slice
from limis.pipeline.grounded import GroundedPipeline
from limis.segment.cache import EmbeddingCache

STRUCTURES = ["spleen", "kidney_left", "kidney_right", "liver"]
REFERENCE = "example_seg_fast_force_split.nii.gz"


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * np.logical_and(a, b).sum() / max(1, a.sum() + b.sum()))


@pytest.fixture(scope="module")
def shared_cache(litemedsam, embedding_cache_dir) -> EmbeddingCache:
    return EmbeddingCache(litemedsam, disk_dir=embedding_cache_dir)


@pytest.fixture(scope="module")
def ras_run(totalseg_dir: Path, total_names, shared_cache):
    volume = load_image(totalseg_dir / "example_ct.nii.gz")
    labels = load_labelmap_on(volume, totalseg_dir / REFERENCE)
    result = GroundedPipeline(OracleDetector(labels, total_names), shared_cache).segment(volume, STRUCTURES)
    return volume, labels, result


@pytest.mark.slow
def test_oracle_litemedsam_dice(ras_run, total_names) -> None:
    volume, labels, result = ras_run
    ids = {name: i for i, name in total_names.items()}
    scores = {r.structure: dice(result.labelmap == r.label_id, labels == ids[r.structure]) for r in result.results}
    print("3D Dice, oracle boxes + LiteMedSAM:", {k: round(v, 3) for k, v in scores.items()})
    for structure in STRUCTURES:
        assert scores[structure] >= 0.85, (structure, scores[structure])


@pytest.mark.slow
def test_lps_copy_gives_same_masks_in_its_geometry(ras_run, lps_copy: Path, totalseg_dir: Path, total_names,
                                                    shared_cache, tmp_path: Path) -> None:
    from limis.imaging.export import write_labelmap

    ras_volume, _, ras_result = ras_run
    volume = load_image(lps_copy)
    labels = load_labelmap_on(volume, totalseg_dir / REFERENCE)
    misses_before = shared_cache.misses
    result = GroundedPipeline(OracleDetector(labels, total_names), shared_cache).segment(volume, STRUCTURES)
    assert shared_cache.misses == misses_before  # same physical image: every embedding came from the cache
    np.testing.assert_array_equal(result.labelmap, ras_result.labelmap)
    out = write_labelmap(volume, result.labelmap, result.labels, tmp_path / "lps_seg.nii.gz")
    written = nib.load(str(out))
    assert nib.aff2axcodes(written.affine) == ("L", "P", "S")
    np.testing.assert_array_equal(written.affine, nib.load(str(lps_copy)).affine)
    # physically identical to the RAS result: flip LPS -> RAS and compare voxel by voxel
    np.testing.assert_array_equal(np.asarray(written.dataobj)[::-1, ::-1, :], ras_volume.to_source(ras_result.labelmap))


@pytest.mark.slow
@pytest.mark.parametrize("axcodes", [("R", "A", "S"), ("L", "P", "S"), ("L", "A", "S")])
def test_left_kidney_is_never_the_right_one(axcodes, ras_run, totalseg_dir: Path, total_names, shared_cache,
                                            tmp_path: Path) -> None:
    """'left kidney' on RAS, LPS and LAS copies of the CT (reference re-saved alike) is the patient's left."""
    from nibabel import orientations as ornt

    from limis.text import resolve_phrase

    paths = []
    for name in ("example_ct.nii.gz", REFERENCE):
        image = nib.load(str(totalseg_dir / name))
        transform = ornt.ornt_transform(ornt.io_orientation(image.affine), ornt.axcodes2ornt(axcodes))
        paths.append(tmp_path / name)
        nib.save(image.as_reoriented(transform), str(paths[-1]))
    volume = load_image(paths[0])
    assert volume.source_axcodes == axcodes
    labels = load_labelmap_on(volume, paths[1])
    structures = resolve_phrase("left kidney")[0].structures
    result = GroundedPipeline(OracleDetector(labels, total_names), shared_cache).segment(volume, list(structures))
    ids = {name: i for i, name in total_names.items()}
    left = result.labelmap == 1
    assert left.any() and dice(left, labels == ids["kidney_right"]) == 0.0
    centre_x = (np.argwhere(left).mean(axis=0) @ volume.affine[:3, :3].T + volume.affine[:3, 3])[0]
    assert centre_x < 0  # patient's left is -x in RAS world coordinates


def test_absent_structure_is_not_found(totalseg_dir: Path, total_names, litemedsam) -> None:
    volume = load_image(totalseg_dir / "example_ct.nii.gz")
    labels = load_labelmap_on(volume, totalseg_dir / REFERENCE)
    cache = EmbeddingCache(litemedsam)
    result = GroundedPipeline(OracleDetector(labels, total_names), cache).segment(volume, ["brain"])
    assert not result.results[0].found
    assert not result.labelmap.any()
    assert cache.misses == 0  # no slice was encoded for an absent structure


def test_a_whole_structure_is_its_labelled_parts(tmp_path: Path, box_segmenter) -> None:
    """'left lung' against lobes is their union, against a whole-lung label that label; 'heart' from its chambers;
    a lobe is never taken from a whole-lung label."""
    from limis.eval.cases import present_structures
    from limis.imaging.phantom import make_phantom

    volume = load_image(make_phantom(tmp_path)["image"])
    lobes = np.zeros(volume.shape, dtype=np.uint16)
    lobes[60:80, 20:40, 10:14] = 10  # lung_upper_lobe_left
    lobes[60:80, 20:40, 6:10] = 11  # lung_lower_lobe_left
    lobes[10:30, 20:40, 6:14] = 12  # lung_upper_lobe_right
    lobes[40:50, 50:60, 8:12] = 45  # heart_atrium_left
    lobes[40:50, 60:70, 8:12] = 46  # heart_ventricle_left
    names = {10: "lung_upper_lobe_left", 11: "lung_lower_lobe_left", 12: "lung_upper_lobe_right",
             45: "heart_atrium_left", 46: "heart_ventricle_left"}
    assert present_structures(lobes, names, ["lung_left", "heart", "lung_middle_lobe_right"]) == ["lung_left", "heart"]
    result = GroundedPipeline(OracleDetector(lobes, names), EmbeddingCache(box_segmenter)).segment(
        volume, ["lung_left", "heart"], all_components())
    found = {r.structure: result.labelmap == r.label_id for r in result.results}
    assert dice(found["lung_left"], np.isin(lobes, [10, 11])) == 1.0
    assert dice(found["heart"], np.isin(lobes, [45, 46])) > 0.6  # one box around both chambers on each slice

    whole = np.where(np.isin(lobes, [10, 11]), 1, np.where(lobes == 12, 2, 0)).astype(np.uint16)
    whole_names = {1: "lung_left", 2: "lung_right"}
    result = GroundedPipeline(OracleDetector(whole, whole_names), EmbeddingCache(box_segmenter)).segment(
        volume, ["lung_left", "lung_right", "lung_upper_lobe_left"], all_components())
    assert [r.found for r in result.results] == [True, True, False]


def all_components():
    """Options that keep every piece, so a mask is compared with the whole reference."""
    from limis.pipeline.grounded import SegmentOptions

    return SegmentOptions(largest_component=False)


class SupportedOracle(OracleDetector):
    """Oracle boxes plus a support map: the structure is said to lie in the displayed left half of its box
    columns (of the labelled pixels), and nowhere on slice `empty_on`."""

    def __init__(self, labels: np.ndarray, names: dict[int, str], split_col: int, empty_on: int) -> None:
        super().__init__(labels, names)
        self.split_col, self.empty_on = split_col, empty_on

    def support(self, images, structure):
        maps = []
        for image in images:
            probability = np.zeros(image.pixels.shape, dtype=np.float32)
            if image.geometry.index != self.empty_on:
                labelled = display_slice(self.labels, image.geometry.plane, image.geometry.index) > 0
                probability[:, : self.split_col] = 0.9
                probability[~labelled] = 0.0
            maps.append(probability)
        return maps


def test_masks_are_cut_to_the_detectors_support_map(tmp_path: Path, box_segmenter) -> None:
    """Where the detector's own map says 'not here' the segmenter's mask is cut, and a slice left empty is dropped;
    `min_support=0` (or a box-only detector) keeps the segmenter's masks whole."""
    from limis.imaging.display import Plane, display_slice
    from limis.imaging.phantom import make_phantom
    from limis.pipeline.grounded import SegmentOptions

    volume = load_image(make_phantom(tmp_path)["image"])
    labels = np.zeros(volume.shape, dtype=np.uint16)
    labels[20:60, 20:50, 6:12] = 1
    names = {1: "liver"}
    view = display_slice(labels, Plane.AXIAL, 8) > 0
    cols = np.flatnonzero(view.any(axis=0))
    split = int(cols[0] + cols[-1]) // 2
    cache = EmbeddingCache(box_segmenter)

    cut = GroundedPipeline(SupportedOracle(labels, names, split, empty_on=7), cache).segment(
        volume, ["liver"], all_components())
    whole = GroundedPipeline(SupportedOracle(labels, names, split, empty_on=7), cache).segment(
        volume, ["liver"], SegmentOptions(largest_component=False, min_support=0.0))
    plain = GroundedPipeline(OracleDetector(labels, names), cache).segment(volume, ["liver"], all_components())

    reference = labels == 1
    assert dice(whole.labelmap == 1, reference) == 1.0
    assert np.array_equal(plain.labelmap, whole.labelmap)
    kept = cut.labelmap == 1
    assert not kept[:, :, 7].any()  # the map said nowhere on slice 7
    for index in (6, 8, 11):
        shown = display_slice(kept, Plane.AXIAL, index)
        assert shown.any() and not shown[:, split:].any()  # only the supported columns remain
        assert np.array_equal(shown, display_slice(reference, Plane.AXIAL, index) & (np.arange(shown.shape[1]) < split))


class SparseOracle(OracleDetector):
    """Oracle boxes found by scanning every n-th slice, as a learned detector is run (no box on every slice)."""

    traits = DetectorTraits(understands_laterality=True)

    def candidate_slices(self, structure, plane_axis):
        return None


def test_propagation_resumes_at_the_next_seed_after_a_failed_slice(tmp_path: Path, box_segmenter) -> None:
    """A slice whose propagated box fails to segment ends propagation only when no seed lies beyond it:
    the detector's next seed re-anchors it (a sliver at a structure's narrow end once lost a whole gallbladder)."""
    from limis.imaging.display import Plane, display_slice
    from limis.imaging.phantom import make_phantom
    from limis.imaging.slice_image import box_from_mask
    from limis.segment.base import SegmentResult

    volume = load_image(make_phantom(tmp_path)["image"])
    labels = np.zeros(volume.shape, dtype=np.uint16)
    labels[20:60, 20:50, 6:12] = 1
    seed_box = box_from_mask(display_slice(labels, Plane.AXIAL, 8) > 0)

    class TightBoxesOnly(type(box_segmenter)):
        """Segments only boxes as tight as the detector's: a propagated (grown) box gives nothing."""

        def segment(self, embedding, prompts):
            results = super().segment(embedding, prompts)
            return [r if p.box[2] - p.box[0] <= seed_box[2] - seed_box[0] + 1 else
                    SegmentResult(mask=np.zeros_like(r.mask), score=0.0, logits=r.logits) for r, p in zip(results, prompts)]

    result = GroundedPipeline(SparseOracle(labels, {1: "liver"}), EmbeddingCache(TightBoxesOnly())).segment(
        volume, ["liver"], all_components())
    covered = [i for i in range(volume.shape[2]) if (result.labelmap[:, :, i] == 1).any()]
    assert covered == [6, 8, 10]  # every scanned seed; the unscanned slices between them failed


def test_a_run_at_another_place_is_not_followed_but_reported(tmp_path: Path, box_segmenter) -> None:
    """Seen on slices 4-12 at one place and on 16-22 at another: one structure is followed, the other named."""
    from limis.imaging.phantom import make_phantom
    from limis.pipeline.grounded import elsewhere_text

    volume = load_image(make_phantom(tmp_path)["image"])
    labels = np.zeros(volume.shape, dtype=np.uint16)
    labels[10:30, 10:30, 4:13] = 1  # five examined slices (4, 6, ..., 12)
    labels[70:95, 60:85, 16:23] = 1  # four examined slices (16, ..., 22), boxes far from the first ones
    result = GroundedPipeline(SparseOracle(labels, {1: "liver"}), EmbeddingCache(box_segmenter)).segment(
        volume, ["liver"], all_components())
    covered = [i for i in range(volume.shape[2]) if (result.labelmap[:, :, i] == 1).any()]
    assert covered and max(covered) <= 13  # the stronger stretch only; before, one run spanned both places
    assert result.results[0].elsewhere == ((16, 22),)
    assert "16-22" in elsewhere_text(result.results[0].elsewhere)
    assert elsewhere_text(()) is None
