"""Size limits that protect the machine from hostile or broken headers."""

from __future__ import annotations

import os

from limis.errors import ImageReadError

DEFAULT_MAX_IMAGE_BYTES = 2 * 1024**3  # canonical float32 voxels; a whole-body CT needs ~1 GiB


def max_image_bytes() -> int:
    """The byte cap for one loaded image (float32), from LIMIS_MAX_IMAGE_BYTES if set."""
    value = os.environ.get("LIMIS_MAX_IMAGE_BYTES")
    return int(value) if value else DEFAULT_MAX_IMAGE_BYTES


def check_claimed_size(shape: tuple[int, ...], source: str) -> None:
    """Refuse an image whose header claims more voxels than the cap allows, before reading it."""
    voxels = 1
    for size in shape:
        voxels *= int(size)
    claimed = voxels * 4
    cap = max_image_bytes()
    if claimed > cap:
        dims = "x".join(str(int(s)) for s in shape)
        raise ImageReadError(
            f"{source}: header claims {dims} voxels ({claimed / 1024**3:.1f} GiB as float32), over the "
            f"{cap / 1024**3:.1f} GiB limit; crop or resample the image, or raise LIMIS_MAX_IMAGE_BYTES."
        )
