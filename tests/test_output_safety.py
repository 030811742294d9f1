"""Outputs are checked before any model loads, never replace an input, and are written all or nothing (issue 15)."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from made_inputs import ct_case, dicom_slice, one_error_line

from limis.cli import main
from limis.errors import ImageReadError


def _no_model(*args, **kwargs):
    raise AssertionError("a model was built before the outputs were checked")


@pytest.fixture()
def case(tmp_path: Path) -> dict[str, Path]:
    return ct_case(tmp_path)


def _segment(case: dict[str, Path], out: Path, *extra: str) -> int:
    return main(["segment", str(case["image"]), "liver", "-o", str(out), "--detector", "oracle",
                 "--labels", str(case["labels"]), "--label-map", str(case["label_map"]), *extra])


# --- 2. outputs never replace inputs or existing files -------------------------------------------

def test_output_naming_an_input_is_refused_before_any_compute(case, monkeypatch, capsys) -> None:
    monkeypatch.setattr("limis.segment.builders.build_segmenter", _no_model)
    before = {name: path.read_bytes() for name, path in case.items()}
    assert _segment(case, case["image"], "--overwrite") == 2
    assert "is the input" in one_error_line(capsys)
    assert _segment(case, case["label_map"].with_name("map.nii.gz"), "--overwrite") == 2  # sidecar map.json
    assert "map.json" in one_error_line(capsys)
    assert main(["chat", str(case["image"]), "-o", str(case["image"]), "--overwrite"]) == 2
    one_error_line(capsys)
    assert {name: path.read_bytes() for name, path in case.items()} == before


def test_existing_output_needs_overwrite_and_every_file_is_printed(case, tmp_path, box_segmenter, monkeypatch,
                                                                   capsys) -> None:
    out = tmp_path / "seg.nii.gz"
    (tmp_path / "seg.json").write_text("mine")
    monkeypatch.setattr("limis.segment.builders.build_segmenter", _no_model)
    assert _segment(case, out) == 2
    assert "seg.json: already exists" in one_error_line(capsys) and (tmp_path / "seg.json").read_text() == "mine"
    monkeypatch.setattr("limis.segment.builders.build_segmenter", lambda *args, **kwargs: box_segmenter)
    assert _segment(case, out, "--overwrite") == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and f"wrote {tmp_path / 'seg.json'}" in printed
    assert json.loads((tmp_path / "seg.json").read_text())["labels"][0]["name"] == "liver"


def test_dicom_seg_output_is_checked_too(tmp_path: Path, monkeypatch, capsys) -> None:
    series = tmp_path / "series"
    series.mkdir()
    for z in (0.0, 2.0):
        dicom_slice(series / f"s{z:.0f}.dcm", series_uid="1.2.3.7", z=z)
    (tmp_path / "seg.seg.dcm").write_bytes(b"a DICOM-SEG from yesterday")
    monkeypatch.setattr("limis.segment.builders.build_segmenter", _no_model)
    assert main(["segment", str(series), "liver", "-o", str(tmp_path / "seg.nii.gz")]) == 2
    assert "seg.seg.dcm: already exists" in one_error_line(capsys)
    assert main(["segment", str(series), "liver", "-o", str(series / "seg.nii.gz")]) == 2
    assert "lies inside the input" in one_error_line(capsys)


# --- 4. output paths are checked before the model ------------------------------------------------

def test_bad_output_paths_fail_before_the_model(case, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr("limis.segment.builders.build_segmenter", _no_model)
    (tmp_path / "folder.nii.gz").mkdir()
    (tmp_path / "a_file").write_text("x")
    expected = {"out.txt": "must end in .nii.gz", "out_noext": "must end in .nii.gz", "folder.nii.gz": "is a folder",
                "a_file/seg.nii.gz": "is a file, not a folder"}
    for name, message in expected.items():
        assert _segment(case, tmp_path / name) == 2, name
        assert message in one_error_line(capsys), name
    assert not (tmp_path / "out_noext.nii").exists()


# --- 3. demo on a busy port ----------------------------------------------------------------------

def test_demo_on_a_busy_port_is_one_line(capsys) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["demo", "--port", str(port)]) == 2
    err = one_error_line(capsys)
    assert f"port {port}" in err and "--port" in err


# --- 11. smaller ---------------------------------------------------------------------------------

def test_library_warnings_do_not_surround_the_error_line(monkeypatch, tmp_path: Path, capsys) -> None:
    import logging
    import logging.handlers

    def noisy(*args, **kwargs):
        warnings.warn("VR of 'DS' is invalid", UserWarning)
        logging.getLogger("nibabel.global").error("pixdim[1,2,3] should be non-zero; setting 0 dims to 1")
        raise ImageReadError("scan.dcm: not readable; re-export it.")

    nibabel_output = logging.handlers.BufferingHandler(capacity=100)  # stands in for nibabel's own stderr handler
    logging.getLogger("nibabel.global").addHandler(nibabel_output)
    monkeypatch.setattr("limis.imaging.readers._load_any", noisy)
    try:
        assert main(["info", str(tmp_path / "scan.dcm")]) == 2
    finally:
        logging.getLogger("nibabel.global").removeHandler(nibabel_output)
    assert "not readable" in one_error_line(capsys)
    assert nibabel_output.buffer == []


def test_sidecar_records_the_input_hash_not_its_name(tmp_path: Path) -> None:
    from limis.imaging import load_image
    from limis.imaging.export import write_labelmap

    path = ct_case(tmp_path)["image"].rename(tmp_path / "Jane_Doe_1970.nii.gz")
    volume = load_image(path)
    labelmap = np.zeros(volume.shape, dtype=np.uint8)
    labelmap[10:20, 10:20, :] = 1
    write_labelmap(volume, labelmap, {1: "liver"}, tmp_path / "out.nii.gz")
    table = (tmp_path / "out.json").read_text()
    assert "Jane" not in table
    assert json.loads(table)["image_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def test_ctrl_c_is_said(case, tmp_path: Path, box_segmenter, monkeypatch, capsys) -> None:
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("limis.segment.builders.build_segmenter", lambda *args, **kwargs: box_segmenter)
    monkeypatch.setattr("limis.pipeline.grounded.GroundedPipeline.segment", interrupted)
    assert _segment(case, tmp_path / "seg.nii.gz") == 130
    assert capsys.readouterr().err.strip() == "interrupted, nothing written"
    assert not (tmp_path / "seg.nii.gz").exists()


def test_interrupt_while_writing_leaves_nothing(case, tmp_path: Path, box_segmenter, monkeypatch, capsys) -> None:
    import limis.imaging.outputs as outputs

    monkeypatch.setattr("limis.segment.builders.build_segmenter", lambda *args, **kwargs: box_segmenter)
    real_stage, calls = outputs._stage, []

    def interrupted_second_write(target: Path, data: bytes) -> Path:
        calls.append(target)
        if len(calls) == 2:  # the labelmap is staged, the JSON table is not
            raise KeyboardInterrupt
        return real_stage(target, data)

    monkeypatch.setattr(outputs, "_stage", interrupted_second_write)
    assert _segment(case, tmp_path / "out" / "seg.nii.gz") == 130
    assert capsys.readouterr().err.strip() == "interrupted, nothing written"
    assert list((tmp_path / "out").iterdir()) == []


def test_2d_picture_sizes_are_pixels_not_ml(tmp_path: Path, box_segmenter, monkeypatch, capsys) -> None:
    from PIL import Image

    from limis.imaging import load_image

    picture = np.zeros((40, 50), dtype=np.uint8)
    picture[10:30, 10:40] = 200
    Image.fromarray(picture).save(tmp_path / "slice.png")
    volume = load_image(tmp_path / "slice.png")
    labels = np.zeros(volume.source_shape[:2], dtype=np.uint8)
    labels[10:40, 10:30] = 1  # (columns, rows) like the picture's source array
    nib.save(nib.Nifti1Image(labels, volume.source_affine), str(tmp_path / "labels.nii.gz"))
    (tmp_path / "map.json").write_text('{"1": "liver"}')
    monkeypatch.setattr("limis.segment.builders.build_segmenter", lambda *args, **kwargs: box_segmenter)
    code = main(["segment", str(tmp_path / "slice.png"), "liver", "-o", str(tmp_path / "seg.nii.gz"), "--json",
                 "--detector", "oracle", "--labels", str(tmp_path / "labels.nii.gz"),
                 "--label-map", str(tmp_path / "map.json")])
    assert code == 0
    (row,) = json.loads(capsys.readouterr().out)["structures"]
    assert row["found"] and row["area_pixels"] == row["voxels"] > 0 and "volume_ml" not in row


def test_cache_files_appear_whole_with_several_writers(tmp_path: Path) -> None:
    """Two writers of one cache file at once each write their own temporary; a failed write leaves nothing."""
    from limis.staging import replaced_on_success

    target = tmp_path / "entry.pt"
    with replaced_on_success(target) as first, replaced_on_success(target) as second:
        assert first != second and first.parent == second.parent == tmp_path
        first.write_bytes(b"first, complete")
        second.write_bytes(b"second, complete")
    assert target.read_bytes() == b"first, complete"  # the writer that finished last (the outer block) wins
    umask = os.umask(0o022)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # a shared cache stays readable (not mkstemp's 0600)
    with pytest.raises(RuntimeError), replaced_on_success(target) as partial:
        partial.write_bytes(b"half")
        raise RuntimeError("encoder failed")
    assert target.read_bytes() == b"first, complete" and sorted(tmp_path.iterdir()) == [target]
