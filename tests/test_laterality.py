"""Patient-side choice from geometry for detectors that know no sides (Grounding DINO-like)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from limis.detect.base import Detection, Detector
from limis.imaging import load_image
from limis.imaging.display import CT_WINDOWS, Plane
from limis.pipeline.grounded import detect_structure
from limis.pipeline.slices import slice_image


class TwoBoxDetector(Detector):
    """Returns the same two 'kidney' boxes (screen left and screen right) on every slice."""

    name = "two-boxes"

    def __init__(self, cols: int, rows: int) -> None:
        self.boxes = [(cols * 0.15, rows * 0.4, cols * 0.3, rows * 0.6), (cols * 0.7, rows * 0.4, cols * 0.85, rows * 0.6)]

    def detect(self, image, structures):
        assert structures == ["kidney"]  # asked for the side-free concept
        return [Detection("kidney", box, 0.9, "kidney") for box in self.boxes]


def _screen_side(box) -> str:
    return "right" if box[0] > 50 else "left"


def test_left_kidney_from_geometry_on_ct_orientations(totalseg_dir: Path, lps_copy: Path) -> None:
    for path in (totalseg_dir / "example_ct.nii.gz", lps_copy, totalseg_dir / "dicom_example_ct"):
        volume = load_image(path)
        image = slice_image(volume, Plane.AXIAL, volume.shape[2] // 2, CT_WINDOWS["abdomen"])
        rows, cols = image.pixels.shape
        detector = TwoBoxDetector(cols, rows)
        left = detect_structure(detector, [image], "kidney_left")[0]
        right = detect_structure(detector, [image], "kidney_right")[0]
        assert len(left) == 1 and left[0].structure == "kidney_left"
        assert left[0].box[0] > cols / 2  # radiological display: patient's left on the screen's right
        assert right[0].box[0] < cols / 2


class MaskBoxDetector(Detector):
    """Boxes around given display masks, all reported as the side-free concept asked for."""

    name = "mask-boxes"

    def __init__(self, masks: dict[str, np.ndarray]) -> None:
        self.masks = masks

    def detect(self, image, structures):
        from limis.imaging.slice_image import box_from_mask

        return [Detection(structures[0], box_from_mask(mask), 0.9, tag) for tag, mask in self.masks.items()]


def test_left_side_on_png_follows_the_stated_view(sammed2d_dir: Path) -> None:
    """s0114_111 is stored rotated 180 degrees: only the right view statement picks the true left lobe."""
    from PIL import Image

    from limis.imaging.display import display_slice

    png = sammed2d_dir / "images" / "s0114_111.png"
    picked = {}
    for view in ("rotated180", "radiological"):
        volume = load_image(png, view=view)
        image = slice_image(volume, Plane.AXIAL, 0, CT_WINDOWS["abdomen"])
        masks = {}
        for side in ("left", "right"):
            raw = np.asarray(Image.open(sammed2d_dir / "masks" / f"s0114_111_lung_lower_lobe_{side}_000.png")) > 0
            masks[side] = display_slice(volume.from_source(raw.T[:, :, None].astype(np.uint8)), Plane.AXIAL, 0) > 0
        chosen = detect_structure(MaskBoxDetector(masks), [image], "lung_lower_lobe_left")[0]
        assert len(chosen) == 1
        picked[view] = chosen[0].phrase
    assert picked["rotated180"] == "left"  # correct view statement: the true left lobe
    assert picked["radiological"] == "right"  # wrong statement flips it: the view must be stated


def test_detector_contract_is_declared_and_typos_fail_loudly(box_segmenter) -> None:
    """Traits are a dataclass (a misspelt trait is a TypeError); a detector outside the contract is refused."""
    import pytest

    from limis.detect.base import DetectorTraits
    from limis.pipeline.grounded import GroundedPipeline
    from limis.segment.cache import EmbeddingCache

    with pytest.raises(TypeError):
        DetectorTraits(dense_box=True)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="traits must be a DetectorTraits"):
        type("Typo", (Detector,), {"name": "typo", "traits": {"dense_boxes": True}, "detect": lambda self, i, s: []})

    class Undeclared:  # the old duck-typed shape: attributes the pipeline used to probe with getattr
        name, dense_boxes = "undeclared", True

        def detect(self, image, structures):
            return []

    with pytest.raises(TypeError, match="not a limis.detect.base.Detector"):
        GroundedPipeline(Undeclared(), EmbeddingCache(box_segmenter))
    looping = TwoBoxDetector(40, 30)
    assert looping.candidate_slices("liver", 2) is None and looping.traits == DetectorTraits()


def test_midline_is_the_trunk_not_an_arm_beside_it(tmp_path: Path) -> None:
    """An arm on the patient's left moves the centre of all non-air pixels by centimetres, not the trunk midline."""
    import nibabel as nib

    from limis.pipeline.laterality import body_midline_x

    x, y = np.meshgrid(np.arange(200) - 99.5, np.arange(160) - 79.5, indexing="ij")  # 1 mm voxels, RAS, centred
    ct = np.full((200, 160, 1), -1000.0, dtype=np.float32)
    ct[((x / 70) ** 2 + (y / 50) ** 2 <= 1), 0] = 40.0  # trunk centred on x = 0
    ct[((x + 88) ** 2 + y ** 2 <= 12 ** 2), 0] = 40.0  # left arm (patient's left = -x), separated by air
    affine = np.eye(4)
    affine[:3, 3] = [-99.5, -79.5, 0.0]
    nib.save(nib.Nifti1Image(ct, affine), str(tmp_path / "arm.nii.gz"))
    volume = load_image(tmp_path / "arm.nii.gz")
    image = slice_image(volume, Plane.AXIAL, 0, CT_WINDOWS["abdomen"])
    everything = x[ct[..., 0] > -500].mean()
    assert everything < -2.0  # the arm pulls the naive centre toward the patient's left
    assert abs(body_midline_x(image)) < 1.5
