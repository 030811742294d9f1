"""A small synthetic abdominal CT with labels, generated on demand so a new user sees results at once.

Not patient data: ellipsoids with typical Hounsfield values placed where the organs lie
(liver on the patient's right, spleen on the left, kidneys either side of the spine).
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np

# name: (TotalSegmentator id, centre RAS mm, semi-axes mm, HU)
PHANTOM_ORGANS = {
    "liver": (5, (55.0, 10.0, 20.0), (55.0, 45.0, 40.0), 60.0),
    "spleen": (1, (-75.0, -25.0, 25.0), (22.0, 35.0, 30.0), 50.0),
    "kidney_right": (2, (55.0, -45.0, -15.0), (18.0, 22.0, 32.0), 150.0),
    "kidney_left": (3, (-55.0, -45.0, -10.0), (18.0, 22.0, 32.0), 150.0),
    "aorta": (52, (-10.0, -30.0, 0.0), (10.0, 10.0, 200.0), 220.0),
    "vertebrae_L1": (31, (0.0, -65.0, 0.0), (18.0, 18.0, 200.0), 700.0),
}
SHAPE = (112, 96, 28)
SPACING = (3.0, 3.0, 4.0)


def make_phantom(out_dir: str | Path, seed: int = 0) -> dict[str, Path]:
    """Write phantom_ct.nii.gz, phantom_labels.nii.gz and phantom_labels.json (id -> name)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    affine = np.diag([-SPACING[0], -SPACING[1], SPACING[2], 1.0])  # stored LPS, like DICOM-derived files
    affine[:3, 3] = [SHAPE[0] * SPACING[0] / 2, SHAPE[1] * SPACING[1] / 2, -SHAPE[2] * SPACING[2] / 2]
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in SHAPE], indexing="ij"), axis=-1).astype(np.float32)
    world = grid @ affine[:3, :3].T + affine[:3, 3]
    rng = np.random.default_rng(seed)
    ct = np.full(SHAPE, -1000.0, dtype=np.float32)
    body = ((world[..., 0] / 150.0) ** 2 + ((world[..., 1] + 5.0) / 105.0) ** 2) <= 1.0
    ct[body] = -80.0  # fat
    ct[body & (((world[..., 0] / 135.0) ** 2 + ((world[..., 1] + 5.0) / 90.0) ** 2) <= 1.0)] = 30.0  # muscle/bowel
    labels = np.zeros(SHAPE, dtype=np.uint8)
    for label_id, centre, axes, hu in PHANTOM_ORGANS.values():
        inside = np.sum(((world - np.asarray(centre)) / np.asarray(axes)) ** 2, axis=-1) <= 1.0
        ct[inside] = hu
        labels[inside] = label_id
    ct += rng.normal(0.0, 12.0, size=SHAPE).astype(np.float32)
    paths = {
        "image": out_dir / "phantom_ct.nii.gz",
        "labels": out_dir / "phantom_labels.nii.gz",
        "label_map": out_dir / "phantom_labels.json",
    }
    nib.save(nib.Nifti1Image(np.rint(ct).astype(np.int16), affine), str(paths["image"]))
    nib.save(nib.Nifti1Image(labels, affine), str(paths["labels"]))
    names = {str(label_id): name for name, (label_id, *_rest) in PHANTOM_ORGANS.items()}
    paths["label_map"].write_text(json.dumps(names, indent=2))
    return paths
