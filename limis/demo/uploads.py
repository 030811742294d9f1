"""Turn browser uploads into one loadable path, and keep server paths out of user-facing messages."""

from __future__ import annotations

import re
import shutil
import warnings
from pathlib import Path

from pydicom.misc import is_dicom

from limis.errors import LimisError
from limis.imaging.readers import IMAGE_2D_SUFFIXES, NIFTI_SUFFIXES

SINGLE_FILE_SUFFIXES = (*NIFTI_SUFFIXES, *IMAGE_2D_SUFFIXES, ".zip", ".dcm")
MAX_PICTURE_PIXELS = 2**25  # 5792 x 5792; the largest radiographs are about 4300 x 5300


def check_total_size(paths: list[Path], max_bytes: int) -> None:
    """Refuse uploads whose sizes add up to more than the cap (several DICOM files can)."""
    total = sum(path.stat().st_size for path in paths)
    if total > max_bytes:
        raise LimisError(f"the upload totals {total / 2**20:.1f} MB, over this demo's {max_bytes / 2**20:.1f} MB "
                         "limit; crop or resample the image, or ask the host to raise --max-upload-mb.")


def check_picture_pixels(path: Path, max_pixels: int = MAX_PICTURE_PIXELS) -> None:
    """Refuse a PNG/JPEG whose decoded size is over `max_pixels`, reading only its header (PIL opens lazily).

    A few hundred kB of PNG can decode to gigabytes; the byte cap alone does not bound memory.
    Files PIL cannot open are left to the image reader, which names what is wrong with them.
    """
    from PIL import Image, UnidentifiedImageError

    if not path.name.lower().endswith(IMAGE_2D_SUFFIXES):
        return
    limit = f"this demo takes pictures up to {max_pixels / 1e6:.1f} million pixels; downscale it first."
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as picture:  # header only: no pixel data is decoded here
                width, height = picture.size
    except Image.DecompressionBombError:
        raise LimisError(f"{path.name} decodes to far more pixels than {limit}") from None
    except (OSError, UnidentifiedImageError, ValueError):
        return
    if width * height > max_pixels:
        raise LimisError(f"{path.name} is {width} x {height} pixels ({width * height / 1e6:.1f} million); {limit}")


def stage_image(paths: list[Path], folder: Path, max_bytes: int) -> Path:
    """The path to give `load_image`: the one uploaded file, or a folder holding several DICOM files.

    Several files must all be DICOM slices of one series; they are copied into a fresh
    sub-folder of this session's own `folder`.
    """
    if not paths:
        raise LimisError("no image chosen: upload a .nii/.nii.gz, a DICOM .zip or .dcm files, or a .png/.jpg.")
    check_total_size(paths, max_bytes)
    if len(paths) == 1:
        check_picture_pixels(paths[0])
        return paths[0]
    not_dicom = [p.name for p in paths if not _is_dicom(p)]
    if not_dicom:
        raise LimisError(f"several files were uploaded but {not_dicom[0]} is not DICOM; upload one image file, "
                         "or only the .dcm files of one series.")
    series = folder / f"dicom-{len(list(folder.glob('dicom-*'))) + 1}"
    series.mkdir(parents=True)
    for number, path in enumerate(paths):
        shutil.copyfile(path, series / f"{number:05d}.dcm")
    return series


def _is_dicom(path: Path) -> bool:
    return path.name.lower().endswith(".dcm") or is_dicom(str(path))


def safe_stem(path: Path) -> str:
    """A file-name stem safe to reuse for outputs: 'CT scan (1).nii.gz' -> 'CT_scan_1'."""
    name = path.name
    for suffix in (*SINGLE_FILE_SUFFIXES, ".json"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_")[:60] or "image"


_ABSOLUTE_PATH = re.compile(r"(?<![\w.])(?:/[^/\s:'\"]+)+/([^/\s:'\"]+)")


def one_line(message: str) -> str:
    """A user-facing single line: absolute server paths become bare file names, line breaks spaces."""
    return " ".join(_ABSOLUTE_PATH.sub(r"\1", message).split())
