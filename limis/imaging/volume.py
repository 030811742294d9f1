"""The `Volume`: voxels in one canonical orientation plus what is needed to write results back.

Canonical frame: RAS. Array axis 0 increases toward the patient's Right, axis 1 toward
Anterior, axis 2 toward Superior; the canonical affine maps (i, j, k) voxel indices to
RAS+ millimetres (+x = patient right, as in NIfTI/nibabel world space).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import nibabel as nib
import numpy as np
from nibabel import orientations as ornt_lib


@dataclass
class Volume:
    """One image in canonical RAS orientation, remembering its source geometry.

    `array` is float32, shape (I, J, K), in HU for CT. `source_affine` and `source_shape`
    describe the file as it was read (array order of the file, RAS+ world mm), and
    `to_source` maps any canonical array back onto that grid exactly.
    """

    array: np.ndarray
    affine: np.ndarray
    source_affine: np.ndarray
    source_shape: tuple[int, ...]
    source_kind: str  # "nifti" | "dicom" | "image2d"
    modality: str  # "CT" | "MR" | "OT" (other, e.g. an 8-bit screenshot)
    path: str
    metadata: dict[str, Any] = field(default_factory=dict)
    source_header: Any = None  # nibabel header for NIfTI input (keeps qform/sform codes)
    dicom_datasets: list[Any] | None = None  # pydicom datasets in source slice order

    @cached_property
    def key(self) -> str:
        """Content hash of voxels and geometry: identifies this image in embedding caches."""
        digest = hashlib.sha1(np.ascontiguousarray(self.array).tobytes())
        digest.update(np.asarray(self.affine, dtype=np.float64).tobytes())
        return digest.hexdigest()[:16]

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.array.shape)  # type: ignore[return-value]

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along the canonical axes (R, A, S)."""
        return tuple(float(s) for s in np.linalg.norm(self.affine[:3, :3], axis=0))  # type: ignore[return-value]

    @property
    def source_axcodes(self) -> tuple[str, ...]:
        """Direction each source array axis increases toward, e.g. ('L', 'P', 'S')."""
        return nib.aff2axcodes(self.source_affine)

    @property
    def source_spacing(self) -> tuple[float, ...]:
        return tuple(float(s) for s in np.linalg.norm(self.source_affine[:3, :3], axis=0))

    @property
    def voxel_volume_ml(self) -> float:
        return float(np.prod(self.spacing)) / 1000.0

    def _to_canonical_ornt(self) -> np.ndarray:
        return ornt_lib.io_orientation(self.source_affine)

    def to_source(self, canonical: np.ndarray) -> np.ndarray:
        """Reorder a canonical (I, J, K) array into the source file's array order."""
        back = ornt_lib.ornt_transform(ornt_lib.axcodes2ornt(("R", "A", "S")), self._to_canonical_ornt())
        return np.ascontiguousarray(ornt_lib.apply_orientation(canonical, back))

    def from_source(self, source: np.ndarray) -> np.ndarray:
        """Reorder an array in the source file's order into canonical RAS order."""
        to_ras = ornt_lib.ornt_transform(self._to_canonical_ornt(), ornt_lib.axcodes2ornt(("R", "A", "S")))
        return np.ascontiguousarray(ornt_lib.apply_orientation(source, to_ras))


def canonical_affine(source_affine: np.ndarray, source_shape: tuple[int, ...]) -> np.ndarray:
    """Affine of the canonical (RAS-ordered) array that holds the same voxels as the source."""
    ornt = ornt_lib.io_orientation(source_affine)
    to_ras = ornt_lib.ornt_transform(ornt, ornt_lib.axcodes2ornt(("R", "A", "S")))
    return source_affine @ ornt_lib.inv_ornt_aff(to_ras, source_shape[:3])


def make_volume(
    source_array: np.ndarray,
    source_affine: np.ndarray,
    *,
    source_kind: str,
    modality: str,
    path: str,
    metadata: dict[str, Any] | None = None,
    source_header: Any = None,
    dicom_datasets: list[Any] | None = None,
) -> Volume:
    """Build a canonical `Volume` from an array in file order and its RAS+ affine."""
    shape = tuple(int(s) for s in source_array.shape)
    ornt = ornt_lib.io_orientation(source_affine)
    to_ras = ornt_lib.ornt_transform(ornt, ornt_lib.axcodes2ornt(("R", "A", "S")))
    canonical = np.ascontiguousarray(ornt_lib.apply_orientation(source_array, to_ras), dtype=np.float32)
    return Volume(
        array=canonical,
        affine=canonical_affine(source_affine, shape),
        source_affine=np.asarray(source_affine, dtype=np.float64),
        source_shape=shape,
        source_kind=source_kind,
        modality=modality,
        path=path,
        metadata=metadata or {},
        source_header=source_header,
        dicom_datasets=dicom_datasets,
    )
