"""Write mask sets back in the input's own geometry: NIfTI labelmap + JSON label table, DICOM-SEG."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
from pathlib import Path

import nibabel as nib
import numpy as np

from limis.errors import LimisError
from limis.imaging.outputs import commit_files
from limis.imaging.volume import Volume


def label_color(label_id: int) -> tuple[int, int, int]:
    """A stable, distinct RGB colour per label id (matplotlib's tab20, then hsv for the rest)."""
    from matplotlib import colormaps

    palette = colormaps["tab20"]
    rgba = palette((label_id - 1) % 20) if label_id <= 40 else colormaps["hsv"]((label_id * 0.618) % 1.0)
    return tuple(int(round(c * 255)) for c in rgba[:3])  # type: ignore[return-value]


def label_table(labels: dict[int, str]) -> list[dict]:
    """JSON-ready rows: id, canonical name, display name, colour."""
    from limis.vocab import display_name

    return [
        {"id": int(label_id), "name": name, "display": display_name(name), "color": list(label_color(int(label_id)))}
        for label_id, name in sorted(labels.items())
    ]


def sidecar_path(out_path: Path) -> Path:
    """`case.nii.gz` -> `case.json` beside it."""
    name = out_path.name
    for suffix in (".nii.gz", ".nii"):
        if name.endswith(suffix):
            return out_path.with_name(name[: -len(suffix)] + ".json")
    return out_path.with_suffix(".json")


def report_path(out_path: Path) -> Path:
    """`case.nii.gz` -> `case.report.json` beside it: versions, models with weight hashes, options, timings, geometry."""
    name = out_path.name.removesuffix(".gz").removesuffix(".nii")
    return out_path.with_name(name + ".report.json")


def dicom_seg_path(out_path: Path) -> Path:
    """`case.nii.gz` -> `case.seg.dcm` beside it."""
    name = out_path.name.removesuffix(".gz").removesuffix(".nii")
    return out_path.with_name(name + ".seg.dcm")


def input_digest(path: str | Path) -> str:
    """First 16 hex digits of the input's SHA-256 (a folder: its files' names and bytes, in order).

    Recorded instead of the file name, which may carry a patient's name.
    """
    path = Path(path)
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        digest.update(str(file.relative_to(path)).encode() if path.is_dir() else b"")
        with file.open("rb") as stream:
            while chunk := stream.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()[:16]


def write_labelmap(volume: Volume, labelmap: np.ndarray, labels: dict[int, str], out_path: str | Path) -> Path:
    """Save a canonical (I, J, K) integer labelmap as NIfTI on the input grid, plus its JSON table (both or neither)."""
    return commit_files(labelmap_files(volume, labelmap, labels, Path(out_path)))[0]


def labelmap_files(volume: Volume, labelmap: np.ndarray, labels: dict[int, str], out_path: Path) -> dict[Path, bytes]:
    """The bytes of the NIfTI labelmap (on the input grid) and of its JSON label table, keyed by path."""
    if labelmap.shape != volume.shape:
        raise LimisError(f"labelmap shape {labelmap.shape} does not match the image {volume.shape}.")
    dtype = np.uint8 if max(labels, default=0) < 256 else np.uint16
    data = volume.to_source(labelmap.astype(dtype))
    if volume.source_kind == "image2d":
        data = data[:, :, 0] if data.ndim == 3 and data.shape[2] == 1 else data
    header = volume.source_header.copy() if volume.source_header is not None else None
    image = nib.Nifti1Image(data.reshape(volume.source_shape), volume.source_affine, header=header)
    image.set_data_dtype(dtype)
    image.header["scl_slope"], image.header["scl_inter"] = 1.0, 0.0
    if header is None:
        image.set_qform(volume.source_affine, code=1)
        image.set_sform(volume.source_affine, code=1)
    nifti = image.to_bytes()
    if out_path.name.lower().endswith(".gz"):
        nifti = gzip.compress(nifti, compresslevel=6, mtime=0)
    source = Path(volume.path)  # an image built in memory has no file: its content key stands in
    table = {"image_sha256": input_digest(source) if source.exists() else volume.key, "labels": label_table(labels)}
    return {out_path: nifti, sidecar_path(out_path): json.dumps(table, indent=2).encode()}


def write_dicom_seg(volume: Volume, labelmap: np.ndarray, labels: dict[int, str], out_path: str | Path) -> Path:
    """Save the labelmap as a DICOM Segmentation object referencing the input DICOM series."""
    return commit_files(dicom_seg_files(volume, labelmap, labels, Path(out_path)))[0]


def dicom_seg_files(volume: Volume, labelmap: np.ndarray, labels: dict[int, str], out_path: Path) -> dict[Path, bytes]:
    """The bytes of a DICOM Segmentation referencing the input DICOM series, keyed by path."""
    import highdicom as hd

    if volume.source_kind != "dicom" or not volume.dicom_datasets:
        raise LimisError("DICOM-SEG needs a DICOM input series; write a NIfTI labelmap instead.")
    present = [label_id for label_id in sorted(labels) if np.any(labelmap == label_id)]
    if not present:
        raise LimisError("no structure has any voxel; nothing to write as DICOM-SEG.")
    source = volume.to_source(labelmap)  # (columns, rows, slices) in series order
    segment_map = np.zeros(source.shape[::-1], dtype=np.uint8)  # (slices, rows, columns)
    descriptions = []
    for number, label_id in enumerate(present, start=1):
        segment_map[np.transpose(source, (2, 1, 0)) == label_id] = number
        descriptions.append(_segment_description(number, labels[label_id]))
    first = volume.dicom_datasets[0]
    seg = hd.seg.Segmentation(
        source_images=volume.dicom_datasets,
        pixel_array=segment_map,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=hd.UID(),
        series_number=max(int(first.get("SeriesNumber", 1) or 1), 1) + 1000,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="LIMIS",
        manufacturer_model_name="LIMIS",
        software_versions=_version(),
        device_serial_number="0",
    )
    buffer = io.BytesIO()
    seg.save_as(buffer)
    return {out_path: buffer.getvalue()}


def _segment_description(number: int, structure: str):
    """A SEG segment coded with SNOMED CT (or the listed private code), the side as a type modifier."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    from limis.vocab.codes import structure_code

    coded = structure_code(structure)
    description = hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=structure[:64],
        segmented_property_category=_concept(coded.category),
        segmented_property_type=_concept(coded.type),
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=hd.AlgorithmIdentificationSequence(
            name="LIMIS", version=_version(), family=codes.cid7162.ArtificialIntelligence
        ),
    )
    if coded.modifier is not None:
        description.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence = [_concept(coded.modifier)]
    return description


def _concept(code):
    import highdicom as hd

    return hd.sr.CodedConcept(value=code.value, scheme_designator=code.scheme, meaning=code.meaning)


def _version() -> str:
    from limis import __version__

    return __version__
