"""Training augmentation of 2D samples: window jitter, rotation, scale, crop, noise, contrast phase, lumen contents.

Labels move with the image and boxes are recomputed from the transformed labels (boxes are
never rotated corners); a left-right flip also swaps the patient-side names.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage

from limis.imaging.display import Window
from limis.train.samples import SliceSample


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentations that keep anatomy honest; probabilities and ranges are per sample.

    `flip_prob` defaults to 0: a left-right flip swaps left/right names (kidney_left <->
    kidney_right) but also moves unpaired organs to the wrong side (a situs-inversus image),
    which teaches a detector that the liver may lie on the patient's left.
    """

    level_jitter: float = 20.0  # HU added to the window level, uniform +-
    width_jitter: float = 0.15  # relative change of the window width, uniform +-
    scale_range: tuple[float, float] = (0.85, 1.15)
    max_rotation_deg: float = 10.0
    crop_fraction: float = 0.1  # crop up to this fraction of each side
    flip_prob: float = 0.0
    noise_std: float = 0.0  # intensity noise in raw units (HU)
    contrast_prob: float = 0.0  # simulate an iodine contrast phase on a CT (see `enhance`)
    lumen_prob: float = 0.0  # refill hollow organs with gas / oral contrast (see `fill_lumens`)


def augment(sample: SliceSample, rng: np.random.Generator, config: AugmentConfig = AugmentConfig()) -> SliceSample:
    """A randomly transformed copy; labels move with the image, names swap sides only on a flip."""
    window = Window(sample.window.name + "+jitter",
                    sample.window.width * (1.0 + rng.uniform(-config.width_jitter, config.width_jitter)),
                    sample.window.level + rng.uniform(-config.level_jitter, config.level_jitter))
    values, labels = sample.values, sample.labels
    # optional steps draw no random number when off, so turning one on never changes the other draws
    if config.contrast_prob and rng.random() < config.contrast_prob:
        values = enhance(values, labels, sample.names, rng)
    if config.lumen_prob and rng.random() < config.lumen_prob:
        values = fill_lumens(values, labels, sample.names, rng)
    angle = rng.uniform(-config.max_rotation_deg, config.max_rotation_deg)
    if angle:
        fill = float(values.min())
        values = ndimage.rotate(values, angle, reshape=False, order=1, mode="constant", cval=fill)
        labels = ndimage.rotate(labels, angle, reshape=False, order=0, mode="constant", cval=0)
    scale = rng.uniform(*config.scale_range)
    values = ndimage.zoom(values, scale, order=1)
    labels = _zoom_labels(labels, values.shape)
    values, labels = _crop(values, labels, rng, config.crop_fraction)
    if config.noise_std:
        values = values + rng.normal(0.0, config.noise_std, values.shape).astype(np.float32)
    names, flipped = sample.names, sample.flipped
    if rng.random() < config.flip_prob:
        values, labels = values[:, ::-1].copy(), labels[:, ::-1].copy()
        names, flipped = swap_sides(names), not flipped
    spacing = (sample.pixel_mm[0] / scale, sample.pixel_mm[1] / scale)
    return replace(sample, values=values.astype(np.float32), labels=labels.astype(np.int32), names=names,
                   pixel_mm=spacing, window=window, flipped=flipped)


# Peak HU added by iodine contrast (typical adult values; arteries peak in the arterial phase,
# parenchyma and veins in the portal-venous phase). Structures not listed do not enhance.
ARTERIAL_HU = {"aorta": 300.0, "iliac_artery": 280.0, "pulmonary_artery": 280.0, "heart": 250.0}
VENOUS_HU = {
    "inferior_vena_cava": 160.0, "portal_vein_and_splenic_vein": 180.0, "iliac_vena": 140.0, "kidney": 180.0,
    "spleen": 110.0, "liver": 80.0, "pancreas": 90.0, "adrenal_gland": 60.0, "small_bowel": 30.0,
    "duodenum": 30.0, "stomach": 25.0, "colon": 20.0, "urinary_bladder": 0.0,
}


def enhance(values: np.ndarray, labels: np.ndarray, names: dict[int, str], rng: np.random.Generator) -> np.ndarray:
    """A CT slice as a random contrast phase would show it: each structure gains HU by its tissue class.

    Arterial and venous strength are drawn independently (0.2-1 of the peak), with +-15 % per
    structure, so non-contrast training scans also teach enhanced-scan appearance.
    """
    from limis import vocab

    arterial, venous = rng.uniform(0.2, 1.0, size=2)
    out = values.astype(np.float32).copy()
    for label_id, name in names.items():
        try:
            base = vocab.get_structure(name).base
        except Exception:  # labels outside the vocabulary do not enhance
            continue
        gain = ARTERIAL_HU.get(base, 0.0) * arterial + VENOUS_HU.get(base, 0.0) * venous
        if gain:
            out[labels == label_id] += gain * rng.uniform(0.85, 1.15)
    return out


HOLLOW = ("stomach", "duodenum", "colon", "small_bowel")


def fill_lumens(values: np.ndarray, labels: np.ndarray, names: dict[int, str], rng: np.random.Generator) -> np.ndarray:
    """Hollow organs with other contents: gas collects at the anterior side (top rows of an axial
    display of a supine patient) above a random level; otherwise positive oral contrast or water.
    The outer 2 pixels stay as the wall.
    """
    out = values.astype(np.float32).copy()
    for label_id, name in names.items():
        mask = labels == label_id
        if name not in HOLLOW or rng.random() < 0.5 or not mask.any():
            continue
        lumen = ndimage.binary_erosion(mask, iterations=2)
        rows = np.flatnonzero(lumen.any(axis=1))
        if rows.size == 0:
            continue
        level = rng.uniform(rows[0], rows[-1] + 1)
        above = np.arange(labels.shape[0])[:, None] < level
        choice = rng.random()
        if choice < 0.6:  # gas over fluid
            out[lumen & above] = rng.uniform(-950.0, -750.0)
            out[lumen & ~above] = rng.uniform(0.0, 30.0)
        elif choice < 0.8:  # positive oral contrast
            out[lumen] = rng.uniform(150.0, 400.0)
        else:  # water
            out[lumen] = rng.uniform(0.0, 20.0)
    return out


def _zoom_labels(labels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    rows = np.minimum((np.arange(shape[0]) + 0.5) * labels.shape[0] / shape[0], labels.shape[0] - 1).astype(int)
    cols = np.minimum((np.arange(shape[1]) + 0.5) * labels.shape[1] / shape[1], labels.shape[1] - 1).astype(int)
    return labels[np.ix_(rows, cols)]


def _crop(values: np.ndarray, labels: np.ndarray, rng: np.random.Generator, fraction: float):
    if fraction <= 0:
        return values, labels
    rows, cols = values.shape
    top, bottom = (int(rng.uniform(0, fraction) * rows) for _ in range(2))
    left, right = (int(rng.uniform(0, fraction) * cols) for _ in range(2))
    window = (slice(top, rows - bottom), slice(left, cols - right))
    return values[window], labels[window]


def swap_sides(names: dict[int, str]) -> dict[int, str]:
    """Label names with patient left and right exchanged (kidney_left <-> kidney_right); others kept."""
    from limis import vocab

    swapped = {}
    for label_id, name in names.items():
        swapped[label_id] = vocab.other_side(name) or name
    return swapped
