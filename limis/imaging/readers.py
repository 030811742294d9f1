"""Read NIfTI, DICOM series (folder, files or .zip) and 2D PNG/JPEG into a canonical `Volume`."""

from __future__ import annotations

import gzip
import hashlib
import tempfile
import warnings
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Iterable

import nibabel as nib
import numpy as np
from pydicom.misc import is_dicom

from limis.errors import ImageReadError
from limis.imaging.limits import check_claimed_size, check_picture_pixels, max_image_bytes
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
    volume = replace_non_finite(_load_any(Path(path), view, pixel_spacing_mm))
    return override_modality(volume, modality) if modality is not None else volume


def _warn(volume: Volume, line: str) -> None:
    """Record a choice the reader made in `metadata["warnings"]`; the CLI prints these, one line each."""
    volume.metadata.setdefault("warnings", []).append(line)


def replace_non_finite(volume: Volume) -> Volume:
    """Set NaN/inf voxels to the finite image minimum and record one warning; refuse an image with none finite (or none).

    NaN spreads through windowing and the models, so a present organ would come out "not found".
    """
    if volume.array.size == 0:
        raise ImageReadError(f"{volume.path}: the image has no voxels (shape {volume.source_shape}); re-export it.")
    finite = np.isfinite(volume.array)
    bad = int(finite.size - np.count_nonzero(finite))
    if bad == 0:
        return volume
    if bad == finite.size:
        raise ImageReadError(f"{volume.path}: every voxel is NaN or infinite; re-export the image with real intensities.")
    low = float(volume.array[finite].min())
    volume.array[~finite] = low
    _warn(volume, f"{bad} voxels were NaN/inf; set to the image minimum {low:g}")
    return volume


def modality_line(volume: Volume, override: str = "--modality") -> str:
    """One line saying which modality the models assume and where it came from (guess, header or the user's
    override, named as the caller offers it: the CLI's --modality, the demo's Modality menu)."""
    read = volume.metadata.get("modality_read")
    if read is not None:
        return f"modality: {volume.modality} (set by {override}; the reader found {read})"
    if volume.metadata.get("modality_guessed"):
        return f"modality: {volume.modality} (guessed from intensities; set {override} if wrong)"
    return f"modality: {volume.modality} (from the file)"


def override_modality(volume: Volume, modality: str) -> Volume:
    """Set the modality the user or manifest states, keeping what was read in `metadata["modality_read"]`."""
    if modality.upper() not in MODALITIES:
        raise ImageReadError(f"unknown modality '{modality}'; use one of: {', '.join(MODALITIES)}.")
    volume.metadata["modality_read"] = volume.modality
    volume.metadata["modality_guessed"] = False
    volume.modality = modality.upper()
    return volume


def _load_any(path: Path, view: str, pixel_spacing_mm: float) -> Volume:
    try:
        exists, is_dir = path.exists(), path.is_dir()
        size = path.stat().st_size if exists and not is_dir else 0
    except OSError as error:  # e.g. "File name too long"
        raise ImageReadError(f"{_shown(path)}: cannot use this path ({error.strerror or _short(error)}); "
                             "check the path.") from error
    if not exists:
        raise ImageReadError(f"{path}: no such file or folder; check the path.")
    if is_dir:
        return load_dicom_files(sorted(p for p in path.rglob("*") if p.is_file()), source=str(path))
    if size == 0:
        raise ImageReadError(f"{path}: the file is empty; re-export or re-upload it.")
    name = path.name.lower()
    if name.endswith(NIFTI_SUFFIXES):
        return load_nifti(path)
    if name.endswith(IMAGE_2D_SUFFIXES):
        return load_image_2d(path, view=view, pixel_spacing_mm=pixel_spacing_mm)
    if name.endswith(".zip"):
        return load_dicom_zip(path)
    if name.endswith(".dcm") or is_dicom(str(path)):
        return load_dicom_files([path], source=str(path))
    raise ImageReadError(
        f"{path}: unsupported file type; give a .nii/.nii.gz, a DICOM folder or .zip, or a .png/.jpg."
    )


def is_dicom_input(path: Path) -> bool:
    """Whether `load_image` would read `path` as DICOM (a folder, .zip, .dcm or a file with the DICM tag)."""
    try:
        if path.is_dir():
            return True
        name = path.name.lower()
        if name.endswith((".zip", ".dcm")):
            return True
        return path.is_file() and not name.endswith(NIFTI_SUFFIXES + IMAGE_2D_SUFFIXES) and is_dicom(str(path))
    except OSError:
        return False


def load_nifti(path: Path) -> Volume:
    """Read a 3D NIfTI (a trailing singleton 4th axis is dropped) with its header geometry."""
    try:
        image = nib.load(str(path))
    except Exception as error:  # nibabel raises many types for a broken header
        raise ImageReadError(f"{path}: not a readable NIfTI header ({_short(error)}); re-export the file.") from error
    shape = tuple(int(s) for s in image.shape)
    dtype = image.header.get_data_dtype()
    check_claimed_size(shape, str(path), itemsize=dtype.itemsize)
    _check_scalar_dtype(dtype, path)
    _check_affine(image.affine, path)
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) == 2:
        shape = (*shape, 1)
    if len(shape) != 3:
        raise ImageReadError(
            f"{path}: {len(image.shape)}D NIfTI of shape {image.shape} is not a single volume; "
            "extract one 3D volume first (e.g. nibabel image.slicer[..., 0])."
        )
    _check_data_length(path, image)
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


def _check_scalar_dtype(dtype: np.dtype, path: Path) -> None:
    """Refuse voxel types that are not one intensity per voxel (complex, RGB) before reading them."""
    if dtype.kind in "c":
        raise ImageReadError(f"{path}: voxels are {dtype} (complex); save the magnitude (e.g. numpy.abs) as float32.")
    if dtype.names is not None or dtype.kind not in "biuf":
        raise ImageReadError(f"{path}: voxels are {dtype.names and '+'.join(dtype.names) or dtype} (not one intensity); "
                             "convert the image to one grey value per voxel.")


def _check_affine(affine: np.ndarray, path: Path) -> None:
    """The voxel-to-world matrix must be finite and invertible, or orientation and left/right are undefined."""
    matrix = np.asarray(affine, dtype=float)[:3, :3]
    singular = np.linalg.svd(matrix, compute_uv=False) if np.all(np.isfinite(matrix)) else None
    if singular is None or singular.max() == 0 or singular.min() < 1e-6 * singular.max():
        problem = "is not finite" if singular is None else "is singular (a zero voxel size or repeated axis)"
        raise ImageReadError(f"{path}: the header's voxel-to-world affine {problem}; fix the qform/sform and pixdim "
                             "(e.g. nibabel set_qform/set_sform), then retry.")


def _check_data_length(path: Path, image: nib.Nifti1Image) -> None:
    """Compare the bytes the file holds with what its header claims, before any voxel array is allocated.

    A gzip stream is read once (in chunks) so a cut-off file, even just its CRC trailer, is caught.
    """
    header = image.header
    needed = int(header.get_data_offset()) + int(np.prod(image.shape)) * header.get_data_dtype().itemsize
    if path.name.lower().endswith(".gz"):
        held = 0
        try:
            with gzip.open(path, "rb") as stream:
                while chunk := stream.read(1 << 24):
                    held += len(chunk)
        except (EOFError, OSError, zlib.error) as error:
            raise ImageReadError(f"{path}: the compressed data is truncated or corrupt ({_short(error)}); "
                                 "re-export the file.") from error
    else:
        held = path.stat().st_size
    if held < needed:
        raise ImageReadError(f"{path}: file holds {held} bytes of data but its header needs {needed}; "
                             "the file is truncated, re-export it.")


def _nifti_description(image: nib.Nifti1Image) -> str:
    raw = image.header.get("descrip")
    return raw.tobytes().decode("latin-1").strip("\x00 ") if raw is not None else ""


def _guess_modality(data: np.ndarray) -> str:
    """CT if the intensities look like Hounsfield units (air near -1000), else MR."""
    sample = np.ravel(data)[:: max(1, data.size // 200_000)]
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return "OT"
    low = float(np.percentile(sample, 1))
    return "CT" if low < -500 else "MR"


def load_dicom_zip(path: Path) -> Volume:
    """Read a DICOM series from a .zip, refusing members that would escape the extraction dir.

    Members are unpacked in chunks against a running total, so an archive whose headers
    understate its sizes still stops at the limit instead of filling the disk.
    """
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError) as error:
        raise ImageReadError(f"{path}: not a valid .zip archive ({_short(error)}); re-create the archive.") from error
    with archive, tempfile.TemporaryDirectory(prefix="limis-dicom-") as tmp:
        members = [info for info in archive.infolist() if not info.is_dir()]
        for info in members:
            member = PurePosixPath(info.filename.replace("\\", "/"))
            if member.is_absolute() or ".." in member.parts:
                raise ImageReadError(
                    f"{path}: unsafe member name '{info.filename}' (absolute or '..'); "
                    "re-create the zip with plain relative names."
                )
        cap = max_image_bytes() // 2  # 16-bit stored pixels take twice the space as float32 voxels
        budget = cap
        for number, info in enumerate(members):
            budget -= _extract_member(archive, info, Path(tmp) / f"{number:06d}.dcm", budget, cap, path)
        files = sorted(p for p in Path(tmp).rglob("*") if p.is_file())
        return load_dicom_files(files, source=str(path))


def _extract_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, budget: int, cap: int,
                    path: Path) -> int:
    """Copy one member to `target` in chunks; returns the bytes written, refusing past `budget` (of `cap`)."""
    if info.file_size > budget:
        raise _zip_too_big(path, cap)
    written = 0
    try:
        with archive.open(info) as source, target.open("wb") as sink:
            while chunk := source.read(1 << 20):
                written += len(chunk)
                if written > budget:
                    raise _zip_too_big(path, cap)
                sink.write(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError, ValueError) as error:
        # a bad CRC, a corrupt deflate stream, an encrypted or unsupported member
        raise ImageReadError(f"{path}: member '{info.filename[:80]}' is corrupt or unreadable ({_short(error)}); "
                             "re-create the archive.") from error
    return written


def _zip_too_big(path: Path, cap: int) -> ImageReadError:
    return ImageReadError(f"{path}: archive unpacks to more than {cap / 1024**2:.0f} MiB, over the limit; "
                          "split the series or raise LIMIS_MAX_IMAGE_BYTES.")


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
    series, note = _largest_series(datasets, source)
    if any("ImageOrientationPatient" not in ds for _, ds in series):
        raise ImageReadError(f"{source}: slices lack ImageOrientationPatient, so left/right is unknown; "
                             "re-export the series with its geometry (or convert it to NIfTI with dcm2niix).")
    rows, cols = int(series[0][1].Rows), int(series[0][1].Columns)
    check_claimed_size((rows, cols, len(series)), source)
    reader = sitk.ImageSeriesReader()
    sorted_names = _sorted_by_position([str(f) for f, _ in series], series, source)
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
    volume = make_volume(
        source_array,
        affine,
        source_kind="dicom",
        modality=str(first.get("Modality", "OT")),
        path=source,
        metadata=metadata,
        dicom_datasets=ordered,
    )
    if note:
        _warn(volume, note)
    if generated:
        _warn(volume, f"the series has blank {', '.join(generated)}; filled them from its file meta or a stable hash "
                      "of its pixel data (the same input always gets the same UIDs)")
    return volume


def _complete_identifiers(datasets: list) -> list[str]:
    """Fill UIDs that anonymised series leave blank, in memory only, so DICOM-SEG can reference them.

    SOP Class/Instance UIDs come from the file meta header when present; a missing Study or
    Series UID gets one UID shared by the whole series. Generated UIDs are derived from the
    slices' pixel data and positions, so the same input always gets the same UIDs (and a
    DICOM-SEG written twice references the same study). Returns the attributes generated.
    """
    from pydicom.uid import generate_uid

    digests = [_slice_digest(ds) for ds in datasets]
    generated: list[str] = []
    shared = {}
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID"):
        if not all(str(ds.get(keyword, "") or "") for ds in datasets):
            shared[keyword] = generate_uid(entropy_srcs=[keyword, *digests])
            generated.append(keyword)
    for dataset, digest in zip(datasets, digests):
        meta = getattr(dataset, "file_meta", None)
        pairs = (("SOPClassUID", "MediaStorageSOPClassUID"), ("SOPInstanceUID", "MediaStorageSOPInstanceUID"))
        for keyword, meta_keyword in pairs:
            if not str(dataset.get(keyword, "") or ""):
                fallback = str(meta.get(meta_keyword, "") or "") if meta is not None else ""
                setattr(dataset, keyword, fallback or generate_uid(entropy_srcs=[keyword, digest]))
                if keyword not in generated:
                    generated.append(keyword)
        for keyword, uid in shared.items():
            setattr(dataset, keyword, uid)
    return generated


def _slice_digest(dataset) -> str:
    digest = hashlib.sha256(bytes(dataset.get("PixelData", b"") or b""))
    digest.update(str(list(dataset.get("ImagePositionPatient", []))).encode())
    return digest.hexdigest()


def _largest_series(datasets: list, source: str) -> tuple[list, str | None]:
    """The series with the most slices (ties: the smallest SeriesInstanceUID), and a note if others were skipped."""
    groups: dict[str, list] = {}
    for file, dataset in datasets:
        groups.setdefault(str(dataset.get("SeriesInstanceUID", "")), []).append((file, dataset))
    uid, chosen = min(groups.items(), key=lambda item: (-len(item[1]), item[0]))
    if len(groups) == 1:
        return chosen, None
    return chosen, (f"{source} holds {len(groups)} DICOM series; loaded the one with the most slices ({len(chosen)}, "
                    f"SeriesInstanceUID {uid or 'blank'}; ties go to the smallest UID) and ignored the others; "
                    "to read another, point to a folder or .zip holding only that series")


GRID_TOLERANCE = 0.1  # a slice may lie 10% of a step off the even first-to-last grid (rounded positions), no more


def _sorted_by_position(names: list[str], series: list, source: str) -> list[str]:
    """Order slices along the slice normal (ImageOrientationPatient cross product); refuse repeated positions
    and uneven steps (a gap)."""
    first = series[0][1]
    try:
        orientation = np.asarray(first.ImageOrientationPatient, dtype=float).reshape(6)
        position = {str(f): float(np.dot(np.cross(orientation[:3], orientation[3:]),
                                         np.asarray(ds.ImagePositionPatient, dtype=float).reshape(3))) for f, ds in series}
    except (TypeError, ValueError) as error:
        raise ImageReadError(f"{source}: unreadable "
                             f"ImageOrientationPatient/ImagePositionPatient ({_short(error)}); re-export the series.") from error
    ordered = sorted(names, key=lambda name: position[name])
    placed = np.array([position[name] for name in ordered])
    steps = np.diff(placed)
    if len(steps) and np.min(np.abs(steps)) < 1e-3:
        repeats = int(np.count_nonzero(np.abs(steps) < 1e-3))
        raise ImageReadError(f"{source}: {len(ordered)} slices of one series but {repeats} share a position with another "
                             "(duplicates or two acquisitions under one SeriesInstanceUID); keep one copy of each slice.")
    grid = np.linspace(placed[0], placed[-1], len(placed))  # where ITK puts them: one step from first to last
    if len(steps) > 1 and np.max(np.abs(placed - grid)) > GRID_TOLERANCE * float(np.mean(steps)):
        # one affine cannot hold a gap: ITK would spread the slices evenly and misplace every one past it
        raise ImageReadError(f"{source}: slices are unevenly spaced ({np.min(steps):.3g} to {np.max(steps):.3g} mm apart: "
                             "a missing slice or mixed reconstructions); re-export the complete series, or resample it "
                             "to a regular grid (e.g. dcm2niix) and give the NIfTI.")
    return ordered


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
    """Read a PNG/JPEG as a one-slice axial image in the stated screen convention.

    Grey 16-bit and 32-bit pictures keep their full range (display windowing rescales later);
    colour and palette pictures become 8-bit grey. The pixel count is checked from the header
    before anything is decoded.
    """
    from PIL import Image, UnidentifiedImageError

    if view not in VIEW_CONVENTIONS:
        raise ImageReadError(f"unknown view convention '{view}'; use one of: {', '.join(VIEW_CONVENTIONS)}.")
    try:
        with warnings.catch_warnings():
            # Pillow warns past its own limit; ours (checked next, before decoding) is lower.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            picture = Image.open(path)
        with picture:
            check_picture_pixels(picture.width, picture.height, str(path))
            check_claimed_size((picture.width, picture.height, 1), str(path))
            grey = picture if picture.mode in ("I", "F") or picture.mode.startswith("I;16") else picture.convert("L")
            pixels = np.asarray(grey).astype(np.float32)
    except Image.DecompressionBombError as error:
        raise ImageReadError(f"{path}: the picture is too large to decode safely ({_short(error)}); "
                             "downscale it first.") from error
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
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


def _shown(path: Path) -> str:
    """A path short enough for a one-line message."""
    text = str(path)
    return text if len(text) <= 80 else text[:60] + "..." + text[-16:]


def _short(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return (text[0] if text else type(error).__name__)[:160]
