"""Radiological display of canonical volumes, intensity windows, and display<->patient mapping.

Display convention (radiological): axial and coronal views show the patient's right on the
screen's LEFT and the patient's left on the screen's RIGHT; axial has anterior at the top,
coronal and sagittal have superior at the top; sagittal has anterior on the screen's left.
A displayed slice is indexed [row, column] with row 0 at the top.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np

from limis.errors import LimisError


class Plane(str, Enum):
    AXIAL = "axial"
    CORONAL = "coronal"
    SAGITTAL = "sagittal"


# For each plane: canonical axis shown along rows, along columns, and the slice axis.
# Every displayed axis is flipped (high canonical index first): rows run A->P or S->I,
# columns run R->L (axial/coronal) or A->P (sagittal).
_PLANE_AXES = {
    Plane.AXIAL: (1, 0, 2),
    Plane.CORONAL: (2, 0, 1),
    Plane.SAGITTAL: (2, 1, 0),
}


@dataclass(frozen=True)
class Window:
    """A named intensity transform: values in [level - width/2, level + width/2] map to [0, 1]."""

    name: str
    width: float
    level: float

    def apply(self, values: np.ndarray) -> np.ndarray:
        low = self.level - self.width / 2.0
        return np.clip((values.astype(np.float32) - low) / self.width, 0.0, 1.0)


CT_WINDOWS = {
    "abdomen": Window("abdomen", 400.0, 40.0),
    "lung": Window("lung", 1500.0, -600.0),
    "bone": Window("bone", 1800.0, 400.0),
    "brain": Window("brain", 80.0, 40.0),
}


def percentile_window(values: np.ndarray, low: float = 0.5, high: float = 99.5) -> Window:
    """A window spanning the given intensity percentiles (MR and 8-bit images)."""
    sample = values.ravel()[:: max(1, values.size // 500_000)]
    lo, hi = (float(v) for v in np.percentile(sample, [low, high]))
    width = max(hi - lo, 1e-6)
    return Window(f"percentile {low:g}-{high:g}", width, lo + width / 2.0)


def window_by_name(name: str) -> Window:
    key = name.lower().strip()
    if key not in CT_WINDOWS:
        raise LimisError(f"unknown window '{name}'; use one of: {', '.join(CT_WINDOWS)}.")
    return CT_WINDOWS[key]


def default_window(volume_array: np.ndarray, modality: str) -> Window:
    """Abdomen window for CT, percentile normalisation otherwise."""
    return CT_WINDOWS["abdomen"] if modality == "CT" else percentile_window(volume_array)


def slice_axis(plane: Plane) -> int:
    """The canonical axis a plane's slices are taken along (axial: 2, the S axis)."""
    return _PLANE_AXES[Plane(plane)][2]


def slice_count(shape: tuple[int, ...], plane: Plane) -> int:
    return int(shape[slice_axis(plane)])


def display_slice(canonical: np.ndarray, plane: Plane, index: int) -> np.ndarray:
    """The radiological 2D view (rows, columns) of slice `index` along the plane's axis."""
    row_axis, col_axis, slice_axis = _PLANE_AXES[Plane(plane)]
    _check_index(canonical.shape, plane, index)
    taken = np.take(canonical, index, axis=slice_axis)
    kept = [a for a in range(3) if a != slice_axis]
    view = np.transpose(taken, (kept.index(row_axis), kept.index(col_axis)))
    return view[::-1, ::-1]


def insert_display_slice(canonical: np.ndarray, plane: Plane, index: int, view: np.ndarray) -> None:
    """Write a displayed 2D slice back into the canonical array in place (inverse of display_slice)."""
    row_axis, col_axis, slice_axis = _PLANE_AXES[Plane(plane)]
    _check_index(canonical.shape, plane, index)
    kept = [a for a in range(3) if a != slice_axis]
    unflipped = np.asarray(view)[::-1, ::-1]
    order = (kept.index(row_axis), kept.index(col_axis))
    inverse = np.argsort(order)
    selector = [slice(None)] * 3
    selector[slice_axis] = index
    canonical[tuple(selector)] = np.transpose(unflipped, inverse)


def _check_index(shape: tuple[int, ...], plane: Plane, index: int) -> None:
    count = slice_count(shape, plane)
    if not 0 <= index < count:
        raise LimisError(f"slice {index} is outside the {Plane(plane).value} range 0..{count - 1}.")


@dataclass(frozen=True)
class SliceGeometry:
    """Maps pixels of one displayed slice to canonical voxels and patient millimetres."""

    shape: tuple[int, int, int]
    affine: np.ndarray  # canonical RAS affine of the volume
    plane: Plane
    index: int

    @property
    def axes(self) -> tuple[int, int, int]:
        return _PLANE_AXES[self.plane]

    @property
    def display_shape(self) -> tuple[int, int]:
        row_axis, col_axis, _ = self.axes
        return int(self.shape[row_axis]), int(self.shape[col_axis])

    @property
    def pixel_spacing_mm(self) -> tuple[float, float]:
        """(row step, column step) in mm: the aspect ratio needed to draw the slice."""
        spacing = np.linalg.norm(self.affine[:3, :3], axis=0)
        row_axis, col_axis, _ = self.axes
        return float(spacing[row_axis]), float(spacing[col_axis])

    def pixel_to_voxel(self, rows: np.ndarray | float, cols: np.ndarray | float) -> np.ndarray:
        """Canonical (i, j, k) voxel coordinates, shape (..., 3), of display pixels (row, col)."""
        row_axis, col_axis, slice_axis = self.axes
        rows = np.asarray(rows, dtype=float)
        cols = np.asarray(cols, dtype=float)
        voxel = np.zeros(np.broadcast(rows, cols).shape + (3,))
        voxel[..., row_axis] = self.shape[row_axis] - 1 - rows
        voxel[..., col_axis] = self.shape[col_axis] - 1 - cols
        voxel[..., slice_axis] = self.index
        return voxel

    def pixel_to_patient(self, rows: np.ndarray | float, cols: np.ndarray | float) -> np.ndarray:
        """RAS+ world mm (+x = patient right, +y = anterior, +z = superior) of display pixels."""
        voxel = self.pixel_to_voxel(rows, cols)
        return voxel @ self.affine[:3, :3].T + self.affine[:3, 3]

    def patient_to_pixel(self, points_ras: np.ndarray) -> np.ndarray:
        """Display (row, col) of RAS+ world points, shape (..., 2); the slice coordinate is dropped."""
        voxel = (np.asarray(points_ras, dtype=float) - self.affine[:3, 3]) @ np.linalg.inv(self.affine[:3, :3]).T
        row_axis, col_axis, _ = self.axes
        rows = self.shape[row_axis] - 1 - voxel[..., row_axis]
        cols = self.shape[col_axis] - 1 - voxel[..., col_axis]
        return np.stack([rows, cols], axis=-1)

    def screen_direction(self, patient_direction: str) -> tuple[int, int] | None:
        """Unit (d_row, d_col) on screen pointing toward a patient direction, None if through-plane.

        `patient_direction` is one of left, right, anterior, posterior, superior, inferior.
        Derived from the affine, so it holds for every file orientation.
        """
        ras = {
            "right": (1, 0, 0), "left": (-1, 0, 0), "anterior": (0, 1, 0),
            "posterior": (0, -1, 0), "superior": (0, 0, 1), "inferior": (0, 0, -1),
        }[patient_direction]
        centre = np.array(self.display_shape, dtype=float) / 2.0
        here = self.pixel_to_patient(centre[0], centre[1])
        step = self.patient_to_pixel(here + np.asarray(ras, dtype=float)) - centre
        if np.allclose(step, 0.0, atol=1e-6):
            return None
        return int(np.sign(round(step[0], 6))), int(np.sign(round(step[1], 6)))


def render_rgb(view: np.ndarray, window: Window) -> np.ndarray:
    """uint8 RGB (rows, cols, 3) picture of a displayed slice under a window."""
    grey = (window.apply(view) * 255.0 + 0.5).astype(np.uint8)
    return np.repeat(grey[:, :, None], 3, axis=2)
