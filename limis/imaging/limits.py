"""Size limits that protect the machine from hostile or broken headers."""

from __future__ import annotations

import os

from limis.errors import ImageReadError

DEFAULT_MAX_IMAGE_BYTES = 2 * 1024**3  # canonical float32 voxels; a whole-body CT needs ~1 GiB
DEFAULT_MAX_PICTURE_PIXELS = 8192 * 8192  # one 2D PNG/JPEG; larger pictures are screenshots of something else


def max_image_bytes() -> int:
    """The byte cap for one loaded image (float32), from LIMIS_MAX_IMAGE_BYTES if set."""
    value = os.environ.get("LIMIS_MAX_IMAGE_BYTES")
    return int(value) if value else DEFAULT_MAX_IMAGE_BYTES


def max_picture_pixels() -> int:
    """The pixel cap for one 2D picture, from LIMIS_MAX_PICTURE_PIXELS if set."""
    value = os.environ.get("LIMIS_MAX_PICTURE_PIXELS")
    return int(value) if value else DEFAULT_MAX_PICTURE_PIXELS


def check_picture_pixels(width: int, height: int, source: str) -> None:
    """Refuse a 2D picture whose header claims more pixels than the cap, before decoding it."""
    cap = max_picture_pixels()
    if int(width) * int(height) > cap:
        raise ImageReadError(
            f"{source}: picture header claims {width}x{height} pixels, over the {cap / 1e6:.0f} Mpixel limit; "
            "downscale the picture, or raise LIMIS_MAX_PICTURE_PIXELS."
        )


def check_claimed_size(shape: tuple[int, ...], source: str, itemsize: int = 4) -> None:
    """Refuse an image whose header claims more voxels than the cap allows, before reading it.

    `itemsize` is the bytes per stored voxel; the larger of it and float32 counts against the cap.
    """
    voxels = 1
    for size in shape:
        voxels *= int(size)
    claimed = voxels * max(4, int(itemsize))
    cap = max_image_bytes()
    if claimed > cap:
        dims = "x".join(str(int(s)) for s in shape)
        raise ImageReadError(
            f"{source}: header claims {dims} voxels ({claimed / 1024**3:.1f} GiB in memory), over the "
            f"{cap / 1024**3:.1f} GiB limit; crop or resample the image, or raise LIMIS_MAX_IMAGE_BYTES."
        )
