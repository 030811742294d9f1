"""Bad or hostile inputs end in a correct image or one clear error line, never a silent wrong answer (issue 15)."""

from __future__ import annotations

import gzip
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from made_inputs import ct_case, dicom_slice, one_error_line, png_claiming

from limis.cli import main
from limis.errors import ImageReadError
from limis.imaging import load_image

# --- 1. NaN voxels -------------------------------------------------------------------------------

def test_nan_voxels_are_set_to_the_minimum_and_said(tmp_path: Path, capsys) -> None:
    path = ct_case(tmp_path, nan_voxels=18)["image"]
    volume = load_image(path)
    assert np.isfinite(volume.array).all() and volume.array.min() == -1000.0
    assert volume.modality == "CT"
    assert volume.metadata["warnings"] == ["18 voxels were NaN/inf; set to the image minimum -1000"]
    assert main(["info", str(path), "--json"]) == 0
    captured = capsys.readouterr()
    assert captured.err.strip() == "warning: 18 voxels were NaN/inf; set to the image minimum -1000"
    assert '"modality": "CT"' in captured.out and "NaN" not in captured.out.replace("NaN/inf", "")


def test_nan_voxels_never_reach_the_segmenter(tmp_path: Path, box_segmenter, monkeypatch, capsys) -> None:
    """The oracle finds the liver and the segmenter sees only finite pixels."""
    seen: list[bool] = []
    original = box_segmenter.embed
    box_segmenter.embed = lambda slices: seen.extend(bool(np.isfinite(s).all()) for s in slices) or original(slices)
    monkeypatch.setattr("limis.segment.builders.build_segmenter", lambda *args, **kwargs: box_segmenter)
    case = ct_case(tmp_path, nan_voxels=18)
    code = main(["segment", str(case["image"]), "liver", "-o", str(tmp_path / "seg.nii.gz"), "--detector", "oracle",
                 "--labels", str(case["labels"]), "--label-map", str(case["label_map"]), "--json"])
    assert code == 0 and '"found": true' in capsys.readouterr().out
    assert seen and all(seen)


def test_all_nan_image_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "nan.nii"
    nib.save(nib.Nifti1Image(np.full((4, 4, 2), np.nan, dtype=np.float32), np.eye(4)), str(path))
    with pytest.raises(ImageReadError, match="every voxel is NaN"):
        load_image(path)


# --- 3. one line instead of a traceback ----------------------------------------------------------

def _nifti_with_affine(path: Path, affine: np.ndarray) -> Path:
    image = nib.Nifti1Image(np.zeros((4, 4, 2), dtype=np.int16), np.eye(4))
    image.header.set_sform(affine, code=1)
    image.header.set_qform(None, code=0)
    path.write_bytes(image.header.binaryblock + b"\0" * 4 + np.zeros(32, np.int16).tobytes())
    return path


def bad_inputs(folder: Path) -> dict[str, Path]:
    """One file per input that used to end in a traceback."""
    cases = {
        "zero affine": _nifti_with_affine(folder / "zero.nii", np.zeros((4, 4))),
        "singular affine": _nifti_with_affine(folder / "singular.nii", np.diag([1.0, 1.0, 0.0, 1.0])),
        "rank-deficient affine": _nifti_with_affine(folder / "rank.nii", np.array(
            [[1.0, 1.0, 0, 0], [1.0, 1.0, 0, 0], [0, 0, 1.0, 0], [0, 0, 0, 1.0]])),
        "NaN affine": _nifti_with_affine(folder / "nan.nii", np.full((4, 4), np.nan)),
    }
    complex_path = folder / "complex.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 2), dtype=np.complex64), np.eye(4)), str(complex_path))
    cases["complex64"] = complex_path
    rgb = np.zeros((4, 4, 2), dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    rgb_path = folder / "rgb.nii.gz"
    nib.save(nib.Nifti1Image(rgb, np.eye(4)), str(rgb_path))
    cases["RGB24"] = rgb_path
    no_orientation = folder / "no_orientation"
    no_orientation.mkdir()
    for z in (0.0, 2.0):
        dicom_slice(no_orientation / f"s{z:.0f}.dcm", series_uid="1.2.3.9", z=z, orientation=False)
    cases["DICOM without ImageOrientationPatient"] = no_orientation
    deflate = folder / "deflate.zip"
    with zipfile.ZipFile(deflate, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("a.dcm", b"DICM" * 5000)
    raw = bytearray(deflate.read_bytes())
    start = raw.index(b"a.dcm") + len(b"a.dcm")  # first member's data follows its local header name
    raw[start : start + 8] = b"\xff" * 8
    (folder / "corrupt_deflate.zip").write_bytes(bytes(raw))
    cases["corrupt deflate"] = folder / "corrupt_deflate.zip"
    stored = folder / "crc.zip"
    with zipfile.ZipFile(stored, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("a.dcm", b"x" * 1000)
    raw = bytearray(stored.read_bytes())
    raw[raw.index(b"x" * 1000) + 10] = ord("y")
    stored.write_bytes(bytes(raw))
    cases["bad CRC"] = stored
    cases["PNG over Pillow's bomb limit"] = png_claiming(folder / "bomb.png", 20000, 20000)
    return cases


def test_bad_inputs_are_one_line_in_info(tmp_path: Path, capsys) -> None:
    for label, path in bad_inputs(tmp_path).items():
        assert main(["info", str(path)]) == 2, label
        err = one_error_line(capsys)
        assert path.name in err, label
    assert main(["info", "x" * 5000 + ".nii.gz"]) == 2
    assert "too long" in one_error_line(capsys)


def test_bad_inputs_are_one_line_in_segment_and_chat(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr("limis.segment.builders.build_segmenter", _no_model)
    cases = bad_inputs(tmp_path)
    for label in ("zero affine", "RGB24", "corrupt deflate"):
        path = cases[label]
        assert main(["segment", str(path), "liver", "-o", str(tmp_path / "out.nii.gz")]) == 2, label
        one_error_line(capsys)
        assert main(["chat", str(path), "-o", str(tmp_path / "out.nii.gz")]) == 2, label
        one_error_line(capsys)


def _no_model(*args, **kwargs):
    raise AssertionError("a model was built")


# --- 6. decoded-size bombs -----------------------------------------------------------------------

def test_png_size_is_checked_from_the_header_before_decoding(tmp_path: Path, monkeypatch) -> None:
    from PIL import Image

    monkeypatch.setattr(Image.Image, "load", lambda self: (_ for _ in ()).throw(AssertionError("decoded")))
    with pytest.raises(ImageReadError, match="Mpixel limit"):
        load_image(png_claiming(tmp_path / "wide.png", 12000, 12000))


def test_zip_members_are_unpacked_against_a_running_total(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("LIMIS_MAX_IMAGE_BYTES", str(4 * 1024**2))
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("a.dcm", b"\0" * 3 * 1024**2)  # 3 MiB of raw pixels is 6 MiB as float32
    assert path.stat().st_size < 10_000
    with pytest.raises(ImageReadError, match="over the limit"):
        load_image(path)


def test_nifti_header_shape_is_checked_before_allocating(tmp_path: Path) -> None:
    header = nib.Nifti1Header()
    header.set_data_dtype(np.int8)
    header.set_data_shape((512, 512, 512))
    path = tmp_path / "claims.nii.gz"
    path.write_bytes(gzip.compress(header.binaryblock + b"\0" * 4))
    assert path.stat().st_size < 200
    with pytest.raises(ImageReadError, match="header needs"):
        load_image(path)


# --- 7. 16-bit PNG -------------------------------------------------------------------------------

def test_16_bit_png_keeps_its_full_range(tmp_path: Path) -> None:
    from PIL import Image

    from limis.imaging import percentile_window

    ramp = np.linspace(0, 65535, 256 * 64).reshape(64, 256).astype(np.uint16)
    path = tmp_path / "ramp16.png"
    Image.fromarray(ramp).save(path)
    volume = load_image(path)
    assert volume.array.min() == 0 and volume.array.max() == 65535
    assert len(np.unique(volume.array)) > 10_000
    window = percentile_window(volume.array)
    assert window.width > 50_000 and len(np.unique(window.apply(volume.array))) > 10_000


# --- 10. DICOM choices ---------------------------------------------------------------------------

def test_several_series_choice_is_said_and_deterministic(tmp_path: Path) -> None:
    for uid in ("1.2.3.20", "1.2.3.10"):
        for z in (0.0, 2.0, 4.0):
            dicom_slice(tmp_path / f"{uid}_{z:.0f}.dcm", series_uid=uid, z=z, value=100 if uid.endswith("10") else 0)
    volume = load_image(tmp_path)
    assert volume.array.min() >= 100  # the tie goes to the smaller SeriesInstanceUID, 1.2.3.10
    (line,) = volume.metadata["warnings"]
    assert "2 DICOM series" in line and "1.2.3.10" in line and "only that series" in line


def test_duplicate_slice_positions_are_refused(tmp_path: Path) -> None:
    for name, z in (("a", 0.0), ("b", 2.0), ("c", 2.0)):
        dicom_slice(tmp_path / f"{name}.dcm", series_uid="1.2.3.5", z=z)
    with pytest.raises(ImageReadError, match="share a position"):
        load_image(tmp_path)


def test_a_series_with_a_missing_slice_is_refused_not_respaced(tmp_path: Path) -> None:
    """ITK would spread 0, 2, 6 mm evenly (3 mm steps) and misplace the middle slice in silence."""
    for name, z in (("a", 0.0), ("b", 2.0), ("c", 6.0)):
        dicom_slice(tmp_path / f"{name}.dcm", series_uid="1.2.3.6", z=z)
    with pytest.raises(ImageReadError, match="unevenly spaced"):
        load_image(tmp_path)


@pytest.mark.parametrize("positions", [(0.0, 2.001, 3.999, 6.0),
                                       (0.0, 0.62, 1.25, 1.87, 2.5)])  # 0.625 mm stored to 0.01 mm: steps 0.62/0.63
def test_rounded_slice_positions_still_load(tmp_path: Path, positions: tuple[float, ...]) -> None:
    """Each slice lies within 0.005 mm of the even grid ITK builds, so none is misplaced."""
    for index, z in enumerate(positions):
        dicom_slice(tmp_path / f"s{index}.dcm", series_uid="1.2.3.7", z=z)
    assert load_image(tmp_path).source_shape == (4, 4, len(positions))


def test_blank_uids_are_derived_from_the_content(tmp_path: Path) -> None:
    for z in (0.0, 2.0):
        dicom_slice(tmp_path / f"s{z:.0f}.dcm", series_uid="", study_uid="", z=z)
    first, second = load_image(tmp_path), load_image(tmp_path)
    uids = [(ds.StudyInstanceUID, ds.SeriesInstanceUID) for ds in first.dicom_datasets]
    assert uids == [(ds.StudyInstanceUID, ds.SeriesInstanceUID) for ds in second.dicom_datasets]
    assert all(uids[0]) and len(set(uids)) == 1
    assert any("same UIDs" in line for line in first.metadata["warnings"])
