"""Segmentation metrics in physical units (voxel spacing in mm), matching MONAI's definitions.

Surfaces are the mask voxels that touch background through a face (mask XOR its erosion with
the 6-/4-connected element); surface distances are Euclidean in mm between surface voxel centres.
A single-slice image (an axis of length 1, e.g. a PNG read as X x Y x 1) is measured in 2D.

Edge cases (documented, tested):
- both masks empty: Dice = IoU = NSD = 1, HD95 = 0, volume error = 0 (nothing to find, nothing found);
- exactly one empty: Dice = IoU = NSD = 0, HD95 = inf, volume error = the other's volume.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from limis.imaging.overlap import dice, iou


@dataclass(frozen=True)
class MaskMetrics:
    dice: float
    iou: float
    nsd: float
    hd95_mm: float
    volume_pred_ml: float
    volume_ref_ml: float

    @property
    def volume_error_ml(self) -> float:
        return self.volume_pred_ml - self.volume_ref_ml


def surface(mask: np.ndarray) -> np.ndarray:
    """Boolean surface voxels: mask minus its face-connected erosion (array borders count as outside)."""
    mask = mask.astype(bool)
    return mask ^ ndimage.binary_erosion(mask)


def _distances_to(surface_from: np.ndarray, surface_to: np.ndarray, spacing: tuple[float, ...]) -> np.ndarray:
    """mm distance from each voxel of `surface_from` to the nearest voxel of `surface_to`."""
    field = ndimage.distance_transform_edt(~surface_to, sampling=spacing)
    return field[surface_from]


def _crop_to_both(pred: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both masks cut to their joint bounding box plus one voxel (clipped at the array border).

    Surfaces and surface distances are unchanged: every surface voxel lies inside, and the
    added layer (or the array border where the box reaches it) is outside as before.
    """
    both = pred | ref
    if not both.any():
        return pred, ref
    box = []
    for axis in range(both.ndim):
        present = np.flatnonzero(both.any(axis=tuple(a for a in range(both.ndim) if a != axis)))
        box.append(slice(max(int(present[0]) - 1, 0), int(present[-1]) + 2))
    box = tuple(box)
    return pred[box], ref[box]


def _image_axes(pred: np.ndarray, ref: np.ndarray, spacing: tuple[float, ...]):
    """Drop the axes the image itself has one voxel along: a single-slice picture (X, Y, 1) is measured in 2D,
    its surface being the outline, not every pixel (a volume with a structure on one slice stays 3D)."""
    keep = [axis for axis, size in enumerate(pred.shape) if size > 1]
    if len(keep) == pred.ndim or not keep:
        return pred, ref, spacing
    shape = [pred.shape[axis] for axis in keep]
    return pred.reshape(shape), ref.reshape(shape), tuple(spacing[axis] for axis in keep)


def _surface_distances(pred: np.ndarray, ref: np.ndarray, spacing: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray] | None:
    """(pred surface -> ref surface, ref surface -> pred surface) distances in mm; None if a surface is empty."""
    pred, ref, spacing = _image_axes(pred, ref, spacing)
    pred, ref = _crop_to_both(pred.astype(bool), ref.astype(bool))
    sp, sr = surface(pred), surface(ref)
    if not sp.any() or not sr.any():
        return None
    return _distances_to(sp, sr, spacing), _distances_to(sr, sp, spacing)


def hd95(pred: np.ndarray, ref: np.ndarray, spacing: tuple[float, ...]) -> float:
    """Symmetric 95th-percentile Hausdorff distance in mm (max of the two directed percentiles)."""
    return _hd95(_surface_distances(pred, ref, spacing), pred, ref)


def _hd95(distances, pred: np.ndarray, ref: np.ndarray) -> float:
    if distances is None:
        return 0.0 if not pred.any() and not ref.any() else float("inf")
    return float(max(np.percentile(distances[0], 95), np.percentile(distances[1], 95)))


def nsd(pred: np.ndarray, ref: np.ndarray, spacing: tuple[float, ...], tolerance_mm: float) -> float:
    """Normalised surface Dice: share of both surfaces lying within `tolerance_mm` of the other."""
    return _nsd(_surface_distances(pred, ref, spacing), pred, ref, tolerance_mm)


def _nsd(distances, pred: np.ndarray, ref: np.ndarray, tolerance_mm: float) -> float:
    if distances is None:
        return 1.0 if not pred.any() and not ref.any() else 0.0
    close = (distances[0] <= tolerance_mm).sum() + (distances[1] <= tolerance_mm).sum()
    return float(close / (distances[0].size + distances[1].size))


def mask_metrics(pred: np.ndarray, ref: np.ndarray, spacing: tuple[float, ...], tolerance_mm: float = 2.0) -> MaskMetrics:
    """All metrics for one structure; `spacing` is the voxel size in mm along each array axis."""
    voxel_ml = float(np.prod(spacing)) / 1000.0
    pred, ref = pred.astype(bool), ref.astype(bool)
    distances = _surface_distances(pred, ref, spacing)
    return MaskMetrics(
        dice=dice(pred, ref),
        iou=iou(pred, ref),
        nsd=_nsd(distances, pred, ref, tolerance_mm),
        hd95_mm=_hd95(distances, pred, ref),
        volume_pred_ml=float(pred.astype(bool).sum()) * voxel_ml,
        volume_ref_ml=float(ref.astype(bool).sum()) * voxel_ml,
    )
