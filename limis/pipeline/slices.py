"""Turn a canonical volume into the displayed, windowed slices that models see."""

from __future__ import annotations

from functools import partial

from limis.imaging.display import Plane, SliceGeometry, Window, default_window, display_slice, window_by_name
from limis.imaging.slice_image import SliceImage
from limis.imaging.volume import Volume


def choose_window(volume: Volume, name: str | None = None) -> Window:
    """A named CT preset if given, else the modality default (abdomen for CT, percentiles otherwise)."""
    return window_by_name(name) if name else default_window(volume.array, volume.modality)


def slice_image(volume: Volume, plane: Plane, index: int, window: Window) -> SliceImage:
    """The windowed radiological view of one slice, with its geometry, cache key and a way to its neighbours."""
    plane = Plane(plane)
    pixels = window.apply(display_slice(volume.array, plane, index))
    geometry = SliceGeometry(volume.shape, volume.affine, plane, int(index))
    key = (volume.key, plane.value, int(index), window.name, window.width, window.level)
    return SliceImage(pixels=pixels, geometry=geometry, window=window, key=key, modality=volume.modality,
                      spacing_known=not volume.metadata.get("spacing_assumed", False),
                      slice_at=partial(slice_image, volume, plane, window=window))
