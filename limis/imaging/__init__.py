"""Medical image I/O, canonical orientation, display and export."""

from limis.imaging.display import (
    CT_WINDOWS,
    Plane,
    SliceGeometry,
    Window,
    default_window,
    display_slice,
    insert_display_slice,
    percentile_window,
    render_rgb,
    slice_count,
    window_by_name,
)
from limis.imaging.readers import VIEW_CONVENTIONS, load_image
from limis.imaging.volume import Volume

__all__ = [
    "CT_WINDOWS",
    "Plane",
    "SliceGeometry",
    "VIEW_CONVENTIONS",
    "Volume",
    "Window",
    "default_window",
    "display_slice",
    "insert_display_slice",
    "load_image",
    "percentile_window",
    "render_rgb",
    "slice_count",
    "window_by_name",
]
