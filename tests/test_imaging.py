"""Tier 1 + golden geometry tests: orientation, spacing, radiological display, round trips, bad input."""

from __future__ import annotations

import gzip
import shutil
import subprocess
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from limis.errors import ImageReadError
from limis.imaging import CT_WINDOWS, Plane, SliceGeometry, display_slice, insert_display_slice, load_image
from limis.imaging.align import load_labelmap_on
from limis.imaging.export import sidecar_path, write_dicom_seg, write_labelmap
from limis.vocab import all_structures

KIDNEY_LEFT = 3


def _screen_half(mask_canonical: np.ndarray) -> str:
    """'right' if the mask's pixels sit on the screen's right half in the axial display."""
    k = int(np.argmax(mask_canonical.sum(axis=(0, 1))))
    view = display_slice(mask_canonical, Plane.AXIAL, k)
    cols = np.nonzero(view)[1]
    return "right" if cols.mean() > view.shape[1] / 2 else "left"


def test_nifti_ras_geometry(totalseg_dir: Path) -> None:
    volume = load_image(totalseg_dir / "example_ct.nii.gz")
    assert volume.source_axcodes == ("R", "A", "S")
    assert volume.shape == (122, 101, 112)
    assert volume.spacing == pytest.approx((3.0, 3.0, 3.0))
    assert volume.modality == "CT"


def test_dicom_folder_geometry_is_lps_and_hu(totalseg_dir: Path) -> None:
    volume = load_image(totalseg_dir / "dicom_example_ct")
    assert volume.source_axcodes == ("L", "P", "S")
    assert volume.source_shape == (512, 512, 20)
    assert volume.spacing == pytest.approx((0.9765625, 0.9765625, 2.0))
    assert volume.modality == "CT"
    assert volume.array.min() == pytest.approx(-1024)  # rescale intercept applied: air is HU
    assert not any(key.lower().startswith("patient") for key in volume.metadata)
    positions = [float(ds.ImagePositionPatient[2]) for ds in volume.dicom_datasets]
    assert positions == sorted(positions)


def test_lps_resaved_copy_geometry(lps_copy: Path, totalseg_dir: Path) -> None:
    volume = load_image(lps_copy)
    original = load_image(totalseg_dir / "example_ct.nii.gz")
    assert volume.source_axcodes == ("L", "P", "S")
    assert volume.spacing == pytest.approx((3.0, 3.0, 3.0))
    np.testing.assert_array_equal(volume.array, original.array)
    np.testing.assert_allclose(volume.affine, original.affine)


@pytest.mark.parametrize(
    "image_name, labels_name",
    [
        ("example_ct.nii.gz", "example_seg_fast_force_split.nii.gz"),
        ("LPS", "example_seg_fast_force_split.nii.gz"),
    ],
)
def test_kidney_left_on_screen_right(image_name, labels_name, totalseg_dir: Path, lps_copy: Path) -> None:
    image = lps_copy if image_name == "LPS" else totalseg_dir / image_name
    volume = load_image(image)
    labels = load_labelmap_on(volume, totalseg_dir / labels_name)
    assert _screen_half(labels == KIDNEY_LEFT) == "right"
    assert _screen_half(labels == 2) == "left"  # kidney_right


def test_dicom_reference_stored_las_aligns_by_affine(totalseg_dir: Path) -> None:
    """The DICOM scan has no kidneys; spleen (patient left) must land on screen right, liver on the left."""
    volume = load_image(totalseg_dir / "dicom_example_ct")
    assert nib.aff2axcodes(nib.load(str(totalseg_dir / "example_seg_dicom.nii.gz")).affine) == ("L", "A", "S")
    labels = load_labelmap_on(volume, totalseg_dir / "example_seg_dicom.nii.gz")
    assert not np.any(labels == KIDNEY_LEFT)
    assert _screen_half(labels == 1) == "right"
    assert _screen_half(labels == 5) == "left"
    # aligned by affine: spleen sits in soft tissue, not air (index-aligned it would be flipped A/P)
    assert np.median(volume.array[labels == 1]) > 0


def test_kidney_left_screen_right_in_las_copy(totalseg_dir: Path, tmp_path: Path) -> None:
    """Third orientation: the CT and its labels re-saved as LAS."""
    from nibabel import orientations as ornt

    paths = []
    for name in ("example_ct.nii.gz", "example_seg_fast_force_split.nii.gz"):
        image = nib.load(str(totalseg_dir / name))
        transform = ornt.ornt_transform(ornt.io_orientation(image.affine), ornt.axcodes2ornt(("L", "A", "S")))
        paths.append(tmp_path / name)
        nib.save(image.as_reoriented(transform), str(paths[-1]))
    volume = load_image(paths[0])
    assert volume.source_axcodes == ("L", "A", "S")
    labels = load_labelmap_on(volume, paths[1])
    assert _screen_half(labels == KIDNEY_LEFT) == "right"


def test_pixel_to_patient_follows_patient_sides(totalseg_dir: Path, lps_copy: Path) -> None:
    for path in (totalseg_dir / "example_ct.nii.gz", lps_copy, totalseg_dir / "dicom_example_ct"):
        volume = load_image(path)
        geometry = SliceGeometry(volume.shape, volume.affine, Plane.AXIAL, 0)
        rows, cols = geometry.display_shape
        left_of_screen = geometry.pixel_to_patient(rows / 2, 0)
        right_of_screen = geometry.pixel_to_patient(rows / 2, cols - 1)
        top = geometry.pixel_to_patient(0, cols / 2)
        bottom = geometry.pixel_to_patient(rows - 1, cols / 2)
        assert right_of_screen[0] < left_of_screen[0]  # screen right = patient left = -x (RAS)
        assert top[1] > bottom[1]  # anterior at the top
        assert geometry.screen_direction("left") == (0, 1)
        assert geometry.screen_direction("anterior") == (-1, 0)
        assert geometry.screen_direction("superior") is None
        back = geometry.patient_to_pixel(geometry.pixel_to_patient(3.0, 7.0))
        np.testing.assert_allclose(back, [3.0, 7.0], atol=1e-9)


@pytest.mark.parametrize("plane", list(Plane))
def test_display_slice_inverse(plane: Plane) -> None:
    rng = np.random.default_rng(0)
    volume = rng.integers(0, 100, size=(5, 6, 7))
    target = np.zeros_like(volume)
    count = volume.shape[{Plane.AXIAL: 2, Plane.CORONAL: 1, Plane.SAGITTAL: 0}[plane]]
    for index in range(count):
        insert_display_slice(target, plane, index, display_slice(volume, plane, index))
    np.testing.assert_array_equal(target, volume)


def test_coronal_and_sagittal_conventions(totalseg_dir: Path) -> None:
    volume = load_image(totalseg_dir / "example_ct.nii.gz")
    coronal = SliceGeometry(volume.shape, volume.affine, Plane.CORONAL, 50)
    assert coronal.screen_direction("superior") == (-1, 0)
    assert coronal.screen_direction("left") == (0, 1)
    sagittal = SliceGeometry(volume.shape, volume.affine, Plane.SAGITTAL, 60)
    assert sagittal.screen_direction("anterior") == (0, -1)
    assert sagittal.screen_direction("superior") == (-1, 0)


def test_window_presets() -> None:
    assert (CT_WINDOWS["abdomen"].width, CT_WINDOWS["abdomen"].level) == (400, 40)
    assert (CT_WINDOWS["lung"].width, CT_WINDOWS["lung"].level) == (1500, -600)
    assert (CT_WINDOWS["bone"].width, CT_WINDOWS["bone"].level) == (1800, 400)
    assert (CT_WINDOWS["brain"].width, CT_WINDOWS["brain"].level) == (80, 40)
    values = CT_WINDOWS["abdomen"].apply(np.array([-160.0, 40.0, 240.0, 1000.0]))
    np.testing.assert_allclose(values, [0.0, 0.5, 1.0, 1.0])


@pytest.mark.parametrize("source", ["example_ct.nii.gz", "LPS", "dicom_example_ct"])
def test_mask_round_trip_in_input_geometry(source, totalseg_dir: Path, lps_copy: Path, tmp_path: Path) -> None:
    path = lps_copy if source == "LPS" else totalseg_dir / source
    volume = load_image(path)
    labelmap = (volume.array > 200).astype(np.uint16)
    out = write_labelmap(volume, labelmap, {1: "liver"}, tmp_path / "mask.nii.gz")
    written = nib.load(str(out))
    assert written.shape == volume.source_shape
    np.testing.assert_array_equal(written.affine, volume.source_affine)
    np.testing.assert_array_equal(np.asarray(written.dataobj), volume.to_source(labelmap))
    assert sidecar_path(out).exists()
    if source != "dicom_example_ct":
        original = nib.load(str(path))
        np.testing.assert_array_equal(written.affine, original.affine)
        assert (written.header.get_qform(coded=True)[1], written.header.get_sform(coded=True)[1]) == (
            original.header.get_qform(coded=True)[1], original.header.get_sform(coded=True)[1])
        source_voxels = np.asarray(original.dataobj)
        np.testing.assert_array_equal(volume.to_source(volume.array).astype(source_voxels.dtype), source_voxels)
    reloaded = load_labelmap_on(volume, out)
    np.testing.assert_array_equal(reloaded, labelmap)


def test_dicom_zip_equals_folder(totalseg_dir: Path, tmp_path: Path) -> None:
    archive = tmp_path / "series.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for file in sorted((totalseg_dir / "dicom_example_ct").iterdir()):
            zipped.write(file, f"series/{file.name}")
    from_zip = load_image(archive)
    from_folder = load_image(totalseg_dir / "dicom_example_ct")
    np.testing.assert_array_equal(from_zip.array, from_folder.array)
    np.testing.assert_allclose(from_zip.affine, from_folder.affine)


def test_dicom_seg_export(totalseg_dir: Path, tmp_path: Path) -> None:
    """SNOMED CT codes, the side as a type modifier, a private code where SNOMED has none, voxels read back exactly."""
    import highdicom as hd

    from limis.vocab.codes import structure_code

    volume = load_image(totalseg_dir / "dicom_example_ct")
    reference = load_labelmap_on(volume, totalseg_dir / "example_seg_dicom.nii.gz")  # TotalSegmentator "total" ids
    names = {1: "spleen", 2: "liver", 3: "humerus_left", 4: "autochthon_left"}
    labelmap = np.select([reference == 1, reference == 5, reference == 69, reference == 86], [1, 2, 3, 4], 0).astype(np.uint16)
    seg = hd.seg.segread(str(write_dicom_seg(volume, labelmap, names, tmp_path / "seg.dcm")))
    coded = {}
    for item in seg.SegmentSequence:
        kind = item.SegmentedPropertyTypeCodeSequence[0]
        modifiers = kind.get("SegmentedPropertyTypeModifierCodeSequence", [])
        coded[item.SegmentLabel] = (kind.CodingSchemeDesignator, kind.CodeValue, [m.CodeMeaning for m in modifiers])
    assert coded == {
        "spleen": ("SCT", "78961009", []),
        "liver": ("SCT", "10200004", []),
        "humerus_left": ("SCT", "85050009", ["Left"]),
        "autochthon_left": ("99LIMIS", structure_code("autochthon_left").type.value, ["Left"]),
    }
    numbers = {item.SegmentLabel: int(item.SegmentNumber) for item in seg.SegmentSequence}
    read = seg.get_volume(combine_segments=True)  # (slices, rows, columns) in highdicom's own slice order
    positions = np.array([[float(v) for v in ds.ImagePositionPatient] for ds in volume.dicom_datasets])
    origins = [read.affine[:3] @ np.array([k, 0, 0, 1.0]) for k in range(read.array.shape[0])]
    order = [int(np.argmin(np.linalg.norm(positions - origin, axis=1))) for origin in origins]  # matched by position
    read_back = np.asarray(read.array)
    written = np.transpose(volume.to_source(labelmap), (2, 1, 0))[order]  # (slices, rows, columns) of the series
    for label_id, name in names.items():
        assert np.array_equal(read_back == numbers[name], written == label_id), name


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dicom3tools (dciodvfy) not installed; .ci/run installs it")
def test_dicom_seg_passes_the_iod_validator(totalseg_dir: Path, tmp_path: Path) -> None:
    volume = load_image(totalseg_dir / "dicom_example_ct")
    labelmap = (load_labelmap_on(volume, totalseg_dir / "example_seg_dicom.nii.gz") == 1).astype(np.uint16)
    out = write_dicom_seg(volume, labelmap, {1: "kidney_left"}, tmp_path / "seg.dcm")
    report = subprocess.run(["dciodvfy", str(out)], capture_output=True, text=True, timeout=120)
    lines = (report.stdout + report.stderr).splitlines()
    assert "Segmentation" in lines and not [line for line in lines if line.startswith("Error")], lines


def test_every_structure_has_a_seg_code() -> None:
    """The code table covers the vocabulary; every SCT entry exists in pydicom's SNOMED dictionary."""
    from limis.vocab.codes import code_table, sct, structure_code

    matches = {s.name: structure_code(s.name).match for s in all_structures()}
    assert matches["kidney_left"] == "exact" and matches["rib_left_3"] == "parent" and matches["hip_left"] == "private"
    table = code_table()
    for keyword in [*table["exact"].values(), *table["parent"].values(), *table["category"].values()]:
        assert sct(keyword).scheme == "SCT"
    private = [entry["code"] for entry in table["private"].values()]
    assert len(set(private)) == len(private)
    used = {s.base for s in all_structures()} | {s.name for s in all_structures()}
    assert set(table["exact"]) | set(table["parent"]) | set(table["private"]) <= used  # no stale entries


def test_png_view_conventions(sammed2d_dir: Path) -> None:
    amos = load_image(sammed2d_dir / "images" / "amos_0006_90.png")
    view = display_slice(amos.array, Plane.AXIAL, 0)
    from PIL import Image

    original = np.asarray(Image.open(sammed2d_dir / "images" / "amos_0006_90.png").convert("L"))
    np.testing.assert_array_equal(view, original)  # radiological PNG is displayed as is
    rotated = load_image(sammed2d_dir / "images" / "s0114_111.png", view="rotated180")
    geometry = SliceGeometry(rotated.shape, rotated.affine, Plane.AXIAL, 0)
    # lung_lower_lobe_left sits at image x=68 (image left) in this 180-degree-rotated slice ...
    mask = np.asarray(Image.open(sammed2d_dir / "masks" / "s0114_111_lung_lower_lobe_left_000.png")) > 0
    canonical = rotated.from_source(mask.T[:, :, None].astype(np.uint8))
    shown = display_slice(canonical, Plane.AXIAL, 0)
    # ... and in LIMIS's radiological display it moves to the screen's right (patient's left)
    assert np.nonzero(shown)[1].mean() > shown.shape[1] / 2
    assert geometry.screen_direction("left") == (0, 1)


# ---- bad input: one line each, nothing written ----

def _nifti_bytes(shape, dtype=np.int16) -> bytes:
    values = np.random.default_rng(0).integers(-1000, 1000, size=shape).astype(dtype)
    image = nib.Nifti1Image(values, np.eye(4))
    return image.to_bytes()


def test_bad_inputs_give_one_line_errors(tmp_path: Path) -> None:
    cases = {}
    empty = tmp_path / "empty.nii.gz"
    empty.write_bytes(b"")
    cases["empty"] = empty
    truncated = tmp_path / "truncated.nii.gz"
    truncated.write_bytes(gzip.compress(_nifti_bytes((40, 40, 40)))[:20000])
    cases["truncated"] = truncated
    four_d = tmp_path / "four_d.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4, 3), dtype=np.int16), np.eye(4)), str(four_d))
    cases["4d"] = four_d
    no_pixels = tmp_path / "no_pixels"
    no_pixels.mkdir()
    (no_pixels / "README.txt").write_text("not a dicom")
    cases["no pixel data"] = no_pixels
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zipped:
        zipped.writestr("../../etc/evil.dcm", b"x")
    cases["zip slip"] = evil
    huge = tmp_path / "huge.nii"
    header = nib.Nifti1Header()
    header.set_data_shape((4096, 4096, 64))
    header.set_data_dtype(np.int16)
    header_bytes = nib.Nifti1Image(np.zeros((1, 1, 1), dtype=np.int16), np.eye(4), header=header).header
    header_bytes.set_data_shape((4096, 4096, 64))  # claims 2 GiB of int16 voxels
    huge.write_bytes(header_bytes.binaryblock + b"\x00" * 4)
    cases["2 GB claim"] = huge
    for label, path in cases.items():
        with pytest.raises(ImageReadError) as raised:
            load_image(path)
        message = str(raised.value)
        assert "\n" not in message and len(message) < 300, label
        assert str(path.name) in message or str(path) in message, label
    assert not (tmp_path.parent / "etc" / "evil.dcm").exists()


def test_truncated_uncompressed_nifti(tmp_path: Path) -> None:
    path = tmp_path / "cut.nii"
    path.write_bytes(_nifti_bytes((30, 30, 30))[:2000])
    with pytest.raises(ImageReadError, match="truncated"):
        load_image(path)
