"""Seeded fuzzing of what users feed `limis`: every generated input ends in success or one `error:` line.

Bounded: a few hundred tiny inputs (NIfTI headers, PNG modes and bit depths, zip archives, random
bytes), run through `limis info` and, for some, `limis segment --detector oracle` with the box test
double instead of a model, so the whole file takes seconds on one core. Checked for every case:
exit 0 or 2, on 2 exactly one `error:` line and no traceback, no input file changed, and no
structure reported "not found" because of NaN voxels.
"""

from __future__ import annotations

import gzip
import io
import json
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from made_inputs import dicom_slice, png_claiming

from limis.cli import main

CASES_PER_KIND = 60
NIFTI_DTYPES = (np.uint8, np.int8, np.int16, np.uint16, np.int32, np.int64, np.float32, np.float64, np.complex64,
                np.dtype([("R", "u1"), ("G", "u1"), ("B", "u1")]))


def _affine(rng: np.random.Generator) -> np.ndarray:
    choice = rng.integers(7)
    if choice == 0:
        return np.zeros((4, 4))
    if choice == 1:
        return np.full((4, 4), np.nan)
    if choice == 2:
        return np.diag([1.0, 1.0, 0.0, 1.0])  # singular
    if choice == 3:
        return np.diag([1e30, 1e-30, 1.0, 1.0])
    rotation, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag(rng.uniform(0.2, 5.0, size=3))
    affine[:3, 3] = rng.uniform(-200, 200, size=3)
    return affine


def _voxels(rng: np.random.Generator, shape: tuple[int, ...], dtype) -> np.ndarray:
    dtype = np.dtype(dtype)
    if dtype.names:
        return np.zeros(shape, dtype=dtype)
    values = rng.normal(0, 500, size=shape)
    if dtype.kind == "f" and values.size and rng.random() < 0.5:
        values.reshape(-1)[rng.random(values.size) < rng.random()] = rng.choice([np.nan, np.inf, -np.inf])
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        values = np.clip(values, info.min, info.max)
    return values.astype(dtype)


def make_nifti(rng: np.random.Generator, folder: Path, number: int) -> Path:
    """A small NIfTI with a random shape (0-sized and 5D included), dtype and affine; sometimes damaged."""
    ndim = int(rng.choice([2, 3, 3, 3, 3, 4, 5]))
    shape = tuple(int(s) for s in rng.integers(0 if rng.random() < 0.1 else 1, 6, size=ndim))
    voxels = _voxels(rng, shape, NIFTI_DTYPES[rng.integers(len(NIFTI_DTYPES))])
    header = nib.Nifti1Image(voxels, np.eye(4), dtype=voxels.dtype).header
    header.set_sform(_affine(rng), code=int(rng.choice([0, 1, 2, 2])))
    header.set_qform(None, code=0)
    if rng.random() < 0.2:
        header["pixdim"][1:4] = rng.choice([0.0, np.nan, -1.0, 1e-30], size=3)
    header["vox_offset"] = 352
    raw = bytearray(header.binaryblock + b"\0" * 4 + voxels.tobytes(order="F"))
    damage = rng.integers(4)
    if damage == 0:
        raw = raw[: int(rng.integers(1, len(raw)))]
    elif damage == 1:
        for _ in range(int(rng.integers(1, 6))):
            raw[int(rng.integers(0, min(len(raw), 352)))] = int(rng.integers(256))
    gz = rng.random() < 0.5
    path = folder / f"case{number}.nii{'.gz' if gz else ''}"
    path.write_bytes(gzip.compress(bytes(raw)) if gz else bytes(raw))
    return path


def make_png(rng: np.random.Generator, folder: Path, number: int) -> Path:
    """A PNG in a random mode and bit depth, or one whose header lies about its size, or a cut-off one."""
    from PIL import Image

    path = folder / f"case{number}.png"
    if rng.random() < 0.1:
        return png_claiming(path, int(rng.integers(1, 40_000)), int(rng.integers(1, 40_000)))
    mode = str(rng.choice(["1", "L", "LA", "P", "RGB", "RGBA", "I;16"]))
    height, width = (int(s) for s in rng.integers(1, 40, size=2))
    if mode == "I;16":
        picture = Image.fromarray(rng.integers(0, 65536, size=(height, width)).astype(np.uint16))
    else:
        picture = Image.fromarray(rng.integers(0, 256, size=(height, width, 3)).astype(np.uint8)).convert(mode)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    data = buffer.getvalue()
    if rng.random() < 0.3:
        data = data[: int(rng.integers(8, len(data)))]
    path.write_bytes(data)
    return path


def make_zip(rng: np.random.Generator, folder: Path, number: int) -> Path:
    """A zip of DICOM slices, random bytes, a nested zip or a big zero member; sometimes with flipped bytes."""
    path = folder / f"case{number}.zip"
    slices = folder / f"slices{number}"
    slices.mkdir()
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED if rng.random() < 0.5 else zipfile.ZIP_STORED) as archive:
        for z in range(int(rng.integers(0, 4))):
            archive.write(dicom_slice(slices / f"{z}.dcm", series_uid=f"1.2.{rng.integers(2)}", z=float(z % 3)),
                          f"series/{z}.dcm")
        kind = rng.integers(3)
        if kind == 0:
            archive.writestr("noise.bin", rng.bytes(int(rng.integers(0, 2000))))
        elif kind == 1:
            inner = io.BytesIO()
            with zipfile.ZipFile(inner, "w") as nested:
                nested.writestr("inner.dcm", rng.bytes(100))
            archive.writestr("nested.zip", inner.getvalue())
        else:
            archive.writestr("zeros.dcm", b"\0" * 3 * 1024**2)  # over the 4 MiB test cap once unpacked as float32
    raw = bytearray(path.read_bytes())
    if rng.random() < 0.4:
        for _ in range(int(rng.integers(1, 8))):
            raw[int(rng.integers(0, len(raw)))] = int(rng.integers(256))
    path.write_bytes(bytes(raw))
    return path


def make_noise(rng: np.random.Generator, folder: Path, number: int) -> Path:
    """Random bytes under a name LIMIS would try to read."""
    suffix = str(rng.choice([".nii", ".nii.gz", ".png", ".jpg", ".zip", ".dcm", ""]))
    data = rng.bytes(int(rng.integers(1, 3000)))
    if suffix == "" and rng.random() < 0.5:
        data = bytes(128) + b"DICM" + data  # looks like DICOM by its preamble
    path = folder / f"case{number}{suffix}"
    path.write_bytes(data)
    return path


MAKERS = {"nifti": make_nifti, "png": make_png, "zip": make_zip, "noise": make_noise}


def _check_outcome(code: int, err: str, label: str) -> None:
    """Exit 0 with only `warning:` lines, or exit 2 with exactly one `error:` line."""
    lines = err.strip().splitlines()
    assert code in (0, 2), f"{label}: exit {code}: {err}"
    if code == 2:
        assert len(lines) == 1 and lines[0].startswith("error:"), f"{label}: {err}"
    else:
        assert all(line.startswith("warning:") for line in lines), f"{label}: {err}"


@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_fuzzed_inputs_end_in_success_or_one_line(kind: str, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("LIMIS_MAX_IMAGE_BYTES", str(4 * 1024**2))
    rng = np.random.default_rng(["nifti", "noise", "png", "zip"].index(kind) + 15)
    for number in range(CASES_PER_KIND):
        path = MAKERS[kind](rng, tmp_path, number)
        before = path.read_bytes()
        code = main(["info", str(path), "--json"])
        captured = capsys.readouterr()
        _check_outcome(code, captured.err, f"{kind} case {number} ({path.name})")
        if code == 0:
            facts = json.loads(captured.out)
            assert all(np.isfinite(facts["input"]["intensity_range"])), f"{kind} case {number}"
        assert path.read_bytes() == before


def test_fuzzed_nan_images_never_hide_a_present_structure(tmp_path: Path, box_segmenter, monkeypatch, capsys) -> None:
    """NaN/inf anywhere in a CT never turns a labelled structure into "not found"; outputs never replace inputs."""
    monkeypatch.setattr("limis.segment.builders.build_segmenter", lambda *args, **kwargs: box_segmenter)
    rng = np.random.default_rng(1515)
    (tmp_path / "map.json").write_text('{"1": "liver"}')
    for number in range(40):
        shape = (int(rng.integers(8, 40)), int(rng.integers(8, 40)), int(rng.integers(1, 4)))
        data = np.full(shape, -1000.0, dtype=np.float32)
        labels = np.zeros(shape, dtype=np.uint8)
        x, y = int(rng.integers(0, shape[0] - 4)), int(rng.integers(0, shape[1] - 4))
        data[x : x + 4, y : y + 4] = 60.0
        labels[x : x + 4, y : y + 4] = 1
        data.reshape(-1)[rng.random(data.size) < rng.uniform(0, 0.5)] = rng.choice([np.nan, np.inf, -np.inf])
        image, reference = tmp_path / f"ct{number}.nii.gz", tmp_path / f"labels{number}.nii.gz"
        nib.save(nib.Nifti1Image(data, np.diag([0.8, 0.8, 2.5, 1.0])), str(image))
        nib.save(nib.Nifti1Image(labels, np.diag([0.8, 0.8, 2.5, 1.0])), str(reference))
        inputs = {p: p.read_bytes() for p in (image, reference, tmp_path / "map.json")}
        out = [tmp_path / f"seg{number}.nii.gz", image, reference, tmp_path / "map.nii.gz"][rng.integers(4)]
        code = main(["segment", str(image), "liver", "-o", str(out), "--detector", "oracle", "--labels", str(reference),
                     "--label-map", str(tmp_path / "map.json"), "--json", "--overwrite"])
        captured = capsys.readouterr()
        _check_outcome(code, captured.err, f"case {number}")
        if out in inputs or out.name == "map.nii.gz":  # map.nii.gz's table would be map.json
            assert code == 2, f"case {number}: an output naming an input was accepted"
        else:
            assert code == 0, f"case {number}: {captured.err}"
            assert json.loads(captured.out)["structures"][0]["found"], f"case {number}: liver not found"
        assert {p: p.read_bytes() for p in inputs} == inputs
