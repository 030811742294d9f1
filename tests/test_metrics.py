"""Metrics with spacing, edge cases, and agreement with MONAI's implementations on the shared labels."""

from __future__ import annotations

import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from limis.eval.metrics import dice, hd95, iou, mask_metrics, nsd


def test_hand_made_masks() -> None:
    a = np.zeros((10, 10, 3), dtype=bool)
    b = np.zeros_like(a)
    a[2:6, 2:6, 1] = True  # 16 voxels
    b[4:8, 2:6, 1] = True  # 16 voxels, 8 shared
    assert dice(a, b) == pytest.approx(0.5)
    assert iou(a, b) == pytest.approx(8 / 24)
    shifted = hd95(a, b, (1.0, 1.0, 1.0))
    assert shifted == pytest.approx(2.0)
    assert hd95(a, b, (2.0, 1.0, 1.0)) == pytest.approx(4.0)  # the shift runs along axis 0: spacing scales it
    assert nsd(a, a, (1.0, 1.0, 1.0), 0.0) == 1.0


def test_edge_cases_are_defined() -> None:
    empty = np.zeros((5, 5, 5), dtype=bool)
    full = empty.copy()
    full[1:3, 1:3, 1:3] = True
    both = mask_metrics(empty, empty, (1.0, 1.0, 1.0))
    assert (both.dice, both.iou, both.nsd, both.hd95_mm, both.volume_error_ml) == (1.0, 1.0, 1.0, 0.0, 0.0)
    one = mask_metrics(full, empty, (2.0, 2.0, 2.0))
    assert (one.dice, one.iou, one.nsd) == (0.0, 0.0, 0.0) and math.isinf(one.hd95_mm)
    assert one.volume_error_ml == pytest.approx(8 * 8 / 1000)


@pytest.mark.parametrize("label", [1, 2, 3, 5, 6, 52])
@pytest.mark.parametrize("spacing", [(3.0, 3.0, 3.0), (0.8, 1.2, 2.5)])
def test_agrees_with_monai(label: int, spacing, totalseg_dir: Path) -> None:
    from monai.metrics import compute_dice, compute_hausdorff_distance, compute_iou, compute_surface_dice

    pred = np.asarray(nib.load(str(totalseg_dir / "example_seg_fast.nii.gz")).dataobj) == label
    ref = np.asarray(nib.load(str(totalseg_dir / "example_seg.nii.gz")).dataobj) == label
    assert pred.any() and ref.any()

    def onehot(mask: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.stack([~mask, mask]))[None].float()

    p, r = onehot(pred), onehot(ref)
    ours = mask_metrics(pred, ref, spacing, tolerance_mm=2.0)
    assert ours.dice == pytest.approx(float(compute_dice(p, r, include_background=False)), abs=1e-6)
    assert ours.iou == pytest.approx(float(compute_iou(p, r, include_background=False)), abs=1e-6)
    monai_hd95 = float(compute_hausdorff_distance(p, r, include_background=False, percentile=95, spacing=list(spacing)))
    assert ours.hd95_mm == pytest.approx(monai_hd95, abs=1e-6)
    monai_nsd = float(compute_surface_dice(p, r, class_thresholds=[2.0], include_background=False, spacing=list(spacing)))
    assert ours.nsd == pytest.approx(monai_nsd, abs=1e-6)


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (0.5, 0.7, 1.0)])
def test_a_single_slice_image_is_measured_in_2d(spacing) -> None:
    """A picture stored X x Y x 1 has a 2D outline: HD95 and NSD equal MONAI's 2D values (once every pixel was
    'surface', so HD95 read 0 mm and NSD ~ Dice)."""
    from monai.metrics import compute_hausdorff_distance, compute_surface_dice

    yy, xx = np.mgrid[0:64, 0:64]
    ref = ((yy - 30) ** 2 + (xx - 30) ** 2 <= 15 ** 2)
    pred = ((yy - 36) ** 2 + (xx - 30) ** 2 <= 15 ** 2)  # the same disc 6 pixels along axis 0

    def onehot(mask: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.stack([~mask, mask]))[None].float()

    ours = mask_metrics(pred[:, :, None], ref[:, :, None], spacing, tolerance_mm=2.0)
    flat = list(spacing[:2])
    expected_hd = float(compute_hausdorff_distance(onehot(pred), onehot(ref), include_background=False, percentile=95,
                                                   spacing=flat))
    expected_nsd = float(compute_surface_dice(onehot(pred), onehot(ref), class_thresholds=[2.0], include_background=False,
                                              spacing=flat))
    assert ours.hd95_mm == pytest.approx(expected_hd, abs=1e-6) and ours.hd95_mm >= 0.9 * 6 * spacing[0]
    assert ours.nsd == pytest.approx(expected_nsd, abs=1e-6) and ours.nsd < ours.dice - 0.1
