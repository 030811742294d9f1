"""Small hand-made inputs for the tests: CT crops, DICOM slices, lying PNGs, and a stand-in embedding cache."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import torch


def ct_case(folder: Path, nan_voxels: int = 0) -> dict[str, Path]:
    """A 64x64x2 CT crop: air -1000 HU, a 'liver' block of 60 HU, optional NaN voxels in one corner."""
    data = np.full((64, 64, 2), -1000.0, dtype=np.float32)
    data[8:48, 10:50, :] = 60.0
    corner = np.zeros(data.shape, dtype=bool)
    corner.reshape(-1)[:nan_voxels] = True  # the first voxels in file order: one corner
    data[corner] = np.nan
    labels = np.zeros(data.shape, dtype=np.uint8)
    labels[8:48, 10:50, :] = 1
    paths = {"image": folder / "ct.nii.gz", "labels": folder / "labels.nii.gz", "label_map": folder / "map.json"}
    nib.save(nib.Nifti1Image(data, np.diag([0.8, 0.8, 3.0, 1.0])), str(paths["image"]))
    nib.save(nib.Nifti1Image(labels, np.diag([0.8, 0.8, 3.0, 1.0])), str(paths["labels"]))
    paths["label_map"].write_text('{"1": "liver"}')
    return paths


def one_error_line(capsys) -> str:
    """The captured stderr, asserted to be exactly one `error:` line with no traceback."""
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error:"), err
    assert "Traceback" not in err
    return err


def dicom_slice(path: Path, *, series_uid: str, z: float, study_uid: str = "1.2.3", orientation: bool = True,
                value: int = 0) -> Path:
    """A tiny CT slice written with pydicom (4x4 int16)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    meta.MediaStorageSOPInstanceUID = f"1.2.3.4.{zlib.crc32(f'{series_uid}/{z}/{path.name}'.encode())}"
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.StudyInstanceUID, ds.SeriesInstanceUID = "CT", study_uid, series_uid
    ds.Rows = ds.Columns = 4
    ds.PixelSpacing, ds.SliceThickness = [1.0, 1.0], 2.0
    ds.ImagePositionPatient = [0.0, 0.0, z]
    if orientation:
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.RescaleSlope, ds.RescaleIntercept = 1, 0
    ds.PixelData = np.full((4, 4), value + int(z), dtype=np.int16).tobytes()
    ds.save_as(str(path), enforce_file_format=True)
    return path


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_claiming(path: Path, width: int, height: int) -> Path:
    """A few-hundred-byte PNG whose header claims width x height grey pixels (its data is one row)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    body = zlib.compress(b"\0" * (width + 1))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", body) + _png_chunk(b"IEND", b""))
    return path


class SeededEmbeddings:
    """Stands in for an EmbeddingCache: a fixed pseudo-embedding per slice key, LiteMedSAM-shaped (or the one given in
    `replaced`); `asked` holds the size of each call, `keys` every key asked, in order."""

    segmenter = SimpleNamespace(name="litemedsam", weights_path=None)

    def __init__(self, replaced: dict[tuple, torch.Tensor] | None = None) -> None:
        self.asked: list[int] = []
        self.keys: list[tuple] = []
        self.replaced = replaced or {}

    def features(self, key: tuple) -> torch.Tensor:
        """(1, 256, 64, 64) for the slice `key`."""
        if key in self.replaced:
            return self.replaced[key]
        return torch.randn(1, 256, 64, 64, generator=torch.Generator().manual_seed(hash(key) % 2**31))

    def get_many(self, images):
        self.asked.append(len(images))
        self.keys += [image.key for image in images]
        return [SimpleNamespace(features=self.features(image.key)) for image in images]
