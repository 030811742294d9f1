"""Read NIfTI, DICOM series (folder, files or .zip) and 2D PNG/JPEG into a canonical `Volume`."""

from __future__ import annotations

import gzip
import tempfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Iterable

import nibabel as nib
import numpy as np

from limis.errors import ImageReadError
from limis.imaging.limits import check_claimed_size, max_image_bytes
from limis.imaging.volume import Volume, make_volume

NIFTI_SUFFIXES = (".nii", ".nii.gz")
IMAGE_2D_SUFFIXES = (".png", ".jpg", ".jpeg")
# DICOM attributes we copy; patient name, id, birth date and the like are never read into LIMIS.
SAFE_DICOM_FIELDS = (
    "Modality",
    "Manufacturer",
    "BodyPartExamined",
    "SeriesDescription",
    "SliceThickness",
    "KVP",
    "ConvolutionKernel",
)
# Screen conventions for 2D images: where patient right and anterior lie on the picture.
VIEW_CONVENTIONS = {
    # name: (RAS x step per image column, RAS y step per image row)
    "radiological": (-1.0, -1.0),  # patient right on screen left, anterior at the top
    "neurological": (1.0, -1.0),  # patient left on screen left, anterior at the top
    "rotated180": (1.0, 1.0),  # radiological turned 180 degrees: patient left on screen left, posterior at top
    "posterior-top": (-1.0, 1.0),  # radiological flipped upside down: patient right on screen left, spine at top
}


MODALITIES = ("CT", "MR", "XR", "OT")


def load_image(
    path: str | Path, *, view: str = "radiological", pixel_spacing_mm: float = 1.0, modality: str | None = None
) -> Volume:
    """Load an image file, DICOM folder or DICOM .zip into a canonical `Volume`.

    `view` and `pixel_spacing_mm` only apply to 2D PNG/JPEG, which carry no geometry. `modality`
    (CT | MR | XR | OT) replaces what the reader found or guessed; the guess is kept in
    `metadata["modality_read"]` (a CT clipped to [-125, 275] HU has no air and looks like MR).
    """
    volume = _load_any(Path(path), view, pixel_spacing_mm)
    return override_modality(volume, modality) if modality is not None else volume


def override_modality(volume: Volume, modality: str) -> Volume:
    """Set the modality the user or manifest states, keeping what was read in `metadata["modality_read"]`."""
    if modality.upper() not in MODALITIES:
        raise ImageReadError(f"unknown modality '{modality}'; use one of: {', '.join(MODALITIES)}.")
    volume.metadata["modality_read"] = volume.modality
    volume.metadata["modality_guessed"] = False
    volume.modality = modality.upper()
    return volume


def _load_any(path: Path, view: str, pixel_spacing_mm: float) -> Volume:
    if not path.exists():
        raise ImageReadError(f"{path}: no such file or folder; check the path.")
    if path.is_dir():
        return load_dicom_files(sorted(p for p in path.rglob("*") if p.is_file()), source=str(path))
    if path.stat().st_size == 0:
        raise ImageReadError(f"{path}: the file is empty; re-export or re-upload it.")
    name = path.name.lower()
    if name.endswith(NIFTI_SUFFIXES):
        return load_nifti(path)
    if name.endswith(IMAGE_2D_SUFFIXES):
        return load_image_2d(path, view=view, pixel_spacing_mm=pixel_spacing_mm)
    if name.endswith(".zip"):
        return load_dicom_zip(path)
    if name.endswith(".dcm") or _looks_like_dicom(path):
        return load_dicom_files([path], source=str(path))
    raise ImageReadError(
        f"{path}: unsupported file type; give a .nii/.nii.gz, a DICOM folder or .zip, or a .png/.jpg."
    )


def _looks_like_dicom(path: Path) -> bool:
    with path.open("rb") as handle:
        handle.seek(128)
        return handle.read(4) == b"DICM"


def load_nifti(path: Path) -> Volume:
    """Read a 3D NIfTI (a trailing singleton 4th axis is dropped) with its header geometry."""
    try:
        image = nib.load(str(path))
    except Exception as error:  # nibabel raises many types for a broken header
        raise ImageReadError(f"{path}: not a readable NIfTI header ({_short(error)}); re-export the file.") from error
    shape = tuple(int(s) for s in image.shape)
    check_claimed_size(shape, str(path))
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) == 2:
        shape = (*shape, 1)
    if len(shape) != 3:
        raise ImageReadError(
            f"{path}: {len(image.shape)}D NIfTI of shape {image.shape} is not a single volume; "
            "extract one 3D volume first (e.g. nibabel image.slicer[..., 0])."
        )
    if path.name.lower().endswith(".gz"):
        _check_gzip_stream(path)
    else:
        _check_uncompressed_length(path, image)
    try:
        data = np.asarray(image.dataobj).reshape(shape)
    except (EOFError, OSError, ValueError, zlib.error, gzip.BadGzipFile) as error:
        raise ImageReadError(f"{path}: the voxel data is truncated or corrupt ({_short(error)}); re-export the file.") from error
    modality = _guess_modality(data)
    return make_volume(
        data,
        image.affine,
        source_kind="nifti",
        modality=modality,
        path=str(path),
        metadata={"description": _nifti_description(image), "modality_guessed": True},
        source_header=image.header.copy(),
    )


def _check_uncompressed_length(path: Path, image: nib.Nifti1Image) -> None:
    header = image.header
    needed = int(header.get_data_offset()) + int(np.prod(image.shape)) * header.get_data_dtype().itemsize
    if path.stat().st_size < needed:
        raise ImageReadError(
            f"{path}: file holds {path.stat().st_size} bytes but its header needs {needed}; "
            "the file is truncated, re-export it."
        )


def _check_gzip_stream(path: Path) -> None:
    """Read the whole gzip stream once so a cut-off file (even just its CRC trailer) is caught."""
    try:
        with gzip.open(path, "rb") as stream:
            while stream.read(1 << 24):
                pass
    except (EOFError, OSError, zlib.error) as error:
        raise ImageReadError(f"{path}: the compressed data is truncated or corrupt ({_short(error)}); re-export the file.") from error


def _nifti_description(image: nib.Nifti1Image) -> str:
    raw = image.header.get("descrip")
    return raw.tobytes().decode("latin-1").strip("\x00 ") if raw is not None else ""


def _guess_modality(data: np.ndarray) -> str:
    """CT if the intensities look like Hounsfield units (air near -1000), else MR."""
    if data.size == 0:
        return "OT"
    low = float(np.percentile(data[:: max(1, data.size // 200_000)], 1))
    return "CT" if low < -500 else "MR"


def load_dicom_zip(path: Path) -> Volume:
    """Read a DICOM series from a .zip, refusing members that would escape the extraction dir."""
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as error:
        raise ImageReadError(f"{path}: not a valid .zip archive; re-create the archive.") from error
    with archive, tempfile.TemporaryDirectory(prefix="limis-dicom-") as tmp:
        members = [info for info in archive.infolist() if not info.is_dir()]
        for info in members:
            member = PurePosixPath(info.filename.replace("\\", "/"))
            if member.is_absolute() or ".." in member.parts:
                raise ImageReadError(
                    f"{path}: unsafe member name '{info.filename}' (absolute or '..'); "
                    "re-create the zip with plain relative names."
                )
        total = sum(info.file_size for info in members)
        if total > max_image_bytes():
            raise ImageReadError(
                f"{path}: archive unpacks to {total / 1024**3:.1f} GiB, over the limit; "
                "split the series or raise LIMIS_MAX_IMAGE_BYTES."
            )
        archive.extractall(tmp, members=members)
        files = sorted(p for p in Path(tmp).rglob("*") if p.is_file())
        return load_dicom_files(files, source=str(path))


def load_dicom_files(files: Iterable[Path], *, source: str) -> Volume:
    """Read one DICOM series from files: sort by position, apply rescale slope/intercept (HU)."""
    import pydicom
    import SimpleITK as sitk

    datasets = []
    for file in files:
        try:
            dataset = pydicom.dcmread(str(file))
        except Exception:  # not DICOM (a README, a thumbnail): skip it
            continue
        if "PixelData" in dataset and "ImagePositionPatient" in dataset:
            datasets.append((file, dataset))
    if not datasets:
        raise ImageReadError(
            f"{source}: no DICOM image slices with pixel data and position found; "
            "point to the folder or .zip holding the series' image files."
        )
    series = _largest_series(datasets)
    rows, cols = int(series[0][1].Rows), int(series[0][1].Columns)
    check_claimed_size((rows, cols, len(series)), source)
    reader = sitk.ImageSeriesReader()
    sorted_names = _sorted_by_position([str(f) for f, _ in series], series)
    reader.SetFileNames(sorted_names)
    try:
        image = reader.Execute()
    except RuntimeError as error:
        raise ImageReadError(f"{source}: the DICOM series could not be decoded ({_short(error)}).") from error
    array_zyx = sitk.GetArrayFromImage(image)
    source_array = np.transpose(array_zyx, (2, 1, 0))  # (columns x, rows y, slices z), DICOM order
    affine = _ras_affine_from_sitk(image)
    by_name = {str(f): ds for f, ds in series}
    ordered = [by_name[name] for name in sorted_names]
    first = ordered[0]
    metadata = {key: _plain(first.get(key)) for key in SAFE_DICOM_FIELDS if first.get(key) is not None}
    metadata["slices"] = len(ordered)
    generated = _complete_identifiers(ordered)
    if generated:
        metadata["generated_uids"] = ", ".join(generated)
    return make_volume(
        source_array,
        affine,
        source_kind="dicom",
        modality=str(first.get("Modality", "OT")),
        path=source,
        metadata=metadata,
        dicom_datasets=ordered,
    )


def _complete_identifiers(datasets: list) -> list[str]:
    """Fill UIDs that anonymised series leave blank, in memory only, so DICOM-SEG can reference them.

    SOP Class/Instance UIDs come from the file meta header when present; a missing Study or
    Series UID gets one new UID shared by the whole series. Returns the attributes generated.
    """
    from pydicom.uid import generate_uid

    generated: list[str] = []
    shared = {}
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID"):
        if not all(str(ds.get(keyword, "") or "") for ds in datasets):
            shared[keyword] = generate_uid()
            generated.append(keyword)
    for dataset in datasets:
        meta = getattr(dataset, "file_meta", None)
        for keyword, meta_keyword in (("SOPClassUID", "MediaStorageSOPClassUID"), ("SOPInstanceUID", "MediaStorageSOPInstanceUID")):
            if not str(dataset.get(keyword, "") or ""):
                fallback = str(meta.get(meta_keyword, "") or "") if meta is not None else ""
                setattr(dataset, keyword, fallback or generate_uid())
                if keyword not in generated:
                    generated.append(keyword)
        for keyword, uid in shared.items():
            setattr(dataset, keyword, uid)
    return generated


def _largest_series(datasets: list) -> list:
    groups: dict[str, list] = {}
    for file, dataset in datasets:
        groups.setdefault(str(dataset.get("SeriesInstanceUID", "")), []).append((file, dataset))
    return max(groups.values(), key=len)


def _sorted_by_position(names: list[str], series: list) -> list[str]:
    """Order slices along the slice normal (ImageOrientationPatient cross product)."""
    first = series[0][1]
    orientation = np.asarray(first.ImageOrientationPatient, dtype=float)
    normal = np.cross(orientation[:3], orientation[3:])
    position = {str(f): float(np.dot(normal, np.asarray(ds.ImagePositionPatient, dtype=float))) for f, ds in series}
    return sorted(names, key=lambda name: position[name])


def _ras_affine_from_sitk(image) -> np.ndarray:
    """SimpleITK geometry is LPS; flip x and y to express the same affine in RAS+ mm."""
    direction = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)
    spacing = np.asarray(image.GetSpacing(), dtype=float)
    origin = np.asarray(image.GetOrigin(), dtype=float)
    lps_to_ras = np.diag([-1.0, -1.0, 1.0])
    affine = np.eye(4)
    affine[:3, :3] = lps_to_ras @ direction @ np.diag(spacing)
    affine[:3, 3] = lps_to_ras @ origin
    return affine


def load_image_2d(path: Path, *, view: str = "radiological", pixel_spacing_mm: float = 1.0) -> Volume:
    """Read an 8-bit PNG/JPEG as a one-slice axial image in the stated screen convention."""
    from PIL import Image, UnidentifiedImageError

    if view not in VIEW_CONVENTIONS:
        raise ImageReadError(f"unknown view convention '{view}'; use one of: {', '.join(VIEW_CONVENTIONS)}.")
    try:
        with Image.open(path) as picture:
            check_claimed_size((picture.width, picture.height, 1), str(path))
            pixels = np.asarray(picture.convert("L"), dtype=np.float32)
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise ImageReadError(f"{path}: not a readable PNG/JPEG image ({_short(error)}); re-export it.") from error
    x_step, y_step = VIEW_CONVENTIONS[view]
    affine = np.diag([x_step * pixel_spacing_mm, y_step * pixel_spacing_mm, pixel_spacing_mm, 1.0])
    source_array = pixels.T[:, :, None]  # (columns, rows, 1): axis 0 runs along image x
    return make_volume(
        source_array,
        affine,
        source_kind="image2d",
        modality="OT",
        path=str(path),
        metadata={"view": view, "pixel_spacing_mm": pixel_spacing_mm, "spacing_assumed": True},
    )


def _plain(value) -> str | float:
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return ", ".join(str(v) for v in value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def _short(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return (text[0] if text else type(error).__name__)[:160]
