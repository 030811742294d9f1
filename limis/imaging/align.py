"""Bring a reference labelmap onto an image's canonical grid by world coordinates, never by index."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from limis.errors import ImageReadError
from limis.imaging.limits import check_claimed_size
from limis.imaging.volume import Volume, canonical_affine

AFFINE_TOLERANCE_MM = 1e-3


def load_labelmap_on(volume: Volume, path: str | Path) -> np.ndarray:
    """Integer labelmap on `volume`'s canonical grid, shape volume.shape.

    The file may be stored in any orientation (e.g. LAS for an LPS DICOM): it is reoriented
    to RAS and, if its grid still differs, resampled with nearest neighbour through the affines.
    """
    path = Path(path)
    try:
        image = nib.load(str(path))
        check_claimed_size(tuple(image.shape), str(path))
        data = np.asarray(image.dataobj)
    except ImageReadError:
        raise
    except Exception as error:
        raise ImageReadError(f"{path}: not a readable labelmap ({error}); give a NIfTI label file.") from error
    if data.ndim == 2:
        data = data[:, :, None]
    if data.ndim != 3:
        raise ImageReadError(f"{path}: labelmap of shape {data.shape} is not 3D.")
    return resample_labels_to(volume, np.rint(data).astype(np.int32), image.affine)


def resample_labels_to(volume: Volume, labels: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Place an integer label array with its own RAS+ affine onto `volume`'s canonical grid."""
    from nibabel import orientations as ornt_lib

    to_ras = ornt_lib.io_orientation(affine)
    canonical = ornt_lib.apply_orientation(labels, to_ras)
    canonical_aff = canonical_affine(affine, labels.shape)
    if canonical.shape == volume.shape and np.allclose(canonical_aff, volume.affine, atol=AFFINE_TOLERANCE_MM):
        return np.ascontiguousarray(canonical)
    from scipy.ndimage import affine_transform

    # voxel of the label grid for each voxel of the image grid
    image_to_labels = np.linalg.inv(canonical_aff) @ volume.affine
    return affine_transform(
        canonical, image_to_labels[:3, :3], offset=image_to_labels[:3, 3], output_shape=volume.shape, order=0, cval=0
    ).astype(np.int32)
