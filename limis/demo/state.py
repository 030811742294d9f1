"""Per-browser-session state and the shared, state-free resources every session uses.

A `DemoState` lives in one `gr.State` per browser session: its own `Session`, its own
`EmbeddingCache`, its own temp folder, chat and study log. Only `Shared` (config, the one
segmenter, the optional transcriber, the example files) is common to all sessions.
"""

from __future__ import annotations

import contextlib
import shutil
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from limis.demo.asr import Transcriber
from limis.demo.config import DemoConfig
from limis.demo.render import Layer, Picture, legend_html, render_view
from limis.demo.study import Task
from limis.detect.lite_grounding import LiteGroundingDetector, LiteGroundingModel
from limis.detect.oracle import OracleDetector
from limis.errors import LimisError
from limis.imaging.display import Plane, display_slice, render_rgb, slice_count
from limis.imaging.volume import Volume
from limis.interact.log import InteractionLog
from limis.interact.session import Session
from limis.segment.base import Segmenter
from limis.segment.cache import EmbeddingCache

TABLE_HEADERS = ["structure", "pixels (slice)", "area cm² (slice)", "voxels (all slices)", "volume ml", "Dice (slice)"]


@dataclass
class Shared:
    """Common to all browser sessions: never holds anything one user did."""

    config: DemoConfig
    root: Path
    segmenter: Segmenter
    example: dict[str, Path]
    tasks: tuple[Task, ...]
    transcriber: Transcriber | None = None
    grounding: LiteGroundingModel | None = None  # read-only text -> box model; each session binds it to its own cache


@dataclass
class DemoState:
    """One browser session's state; `lock` serialises its events (two quick clicks never interleave)."""

    session_id: str
    folder: Path
    lock: threading.Lock = field(default_factory=threading.Lock)
    session: Session | None = None
    case: str = ""
    detector_note: str = "no image loaded"
    chat: list[dict[str, str]] = field(default_factory=list)
    pending: tuple[float, float] | None = None  # first box corner, (x, y) display-slice pixels
    picture: Picture | None = None  # what the browser shows now: click mapping and screenshots
    log: InteractionLog | None = None
    participant: str | None = None
    task_started: dict[str, float] = field(default_factory=dict)
    uploads: set[Path] = field(default_factory=set)  # this session's files in Gradio's upload cache


def new_state(root: Path) -> DemoState:
    """A fresh state with its own folder under the demo temp dir."""
    session_id = uuid.uuid4().hex[:12]
    folder = root / "sessions" / session_id
    folder.mkdir(parents=True)
    return DemoState(session_id, folder)


def discard(state: DemoState | None) -> None:
    """Remove the session's folder and its uploads (on tab close, and as the gr.State delete callback)."""
    if state is None:
        return
    shutil.rmtree(state.folder, ignore_errors=True)
    for path in state.uploads:
        path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            path.parent.rmdir()  # Gradio keeps each upload in its own folder; only removed once empty
    state.uploads.clear()


class OpenSessions:
    """Browser session id -> its DemoState, so the tab's unload event can delete that session's files at once."""

    def __init__(self) -> None:
        self._states: dict[str, DemoState] = {}
        self._lock = threading.Lock()

    def register(self, key: str, state: DemoState) -> DemoState:
        with self._lock:
            self._states[key] = state
        return state

    def pop(self, key: str) -> DemoState | None:
        """Forget the session; its state (to discard), or None if it never registered."""
        with self._lock:
            return self._states.pop(key, None)


def require_session(state: DemoState) -> Session:
    if state.session is None:
        raise LimisError("no image yet: upload one and press 'Load image', or press 'Example case'.")
    return state.session


def open_case(shared: Shared, state: DemoState, volume: Volume, reference: tuple[np.ndarray, dict[int, str]] | None,
              case: str, detector_note: str) -> None:
    """Start a new Session on a loaded volume: the oracle detector when a reference is given, else the shared one."""
    cache = EmbeddingCache(shared.segmenter, max_bytes=shared.config.session_cache_mb * 2**20,
                           disk_dir=shared.config.models.cache_dir)
    detector = (OracleDetector(*reference) if reference is not None
                else LiteGroundingDetector(shared.grounding, cache) if shared.grounding is not None else None)
    state.session = Session(volume, cache, detector=detector, reference=reference, log=state.log)
    state.case, state.detector_note = case, detector_note
    state.chat, state.pending = [], None
    if state.log is not None:
        state.log.write({"event": "case", "image": volume.key, "shape": list(volume.shape),
                         "modality": volume.modality, "reference": reference is not None})


def layers(session: Session) -> list[Layer]:
    """Every structure's mask and box on the current slice, in label order."""
    from limis.vocab import display_name

    return [Layer(name, display_name(name), obj.label_id, session.mask(name), session.box(name))
            for name, obj in sorted(session.state.objects.items(), key=lambda item: item[1].label_id)]


def draw(state: DemoState) -> Picture | None:
    """Render the current slice with overlays and remember it (clicks map through it)."""
    session = state.session
    if session is None:
        state.picture = None
        return None
    image = session.current_image()
    view = display_slice(session.volume.array, Plane(session.view.plane), session.view.index)
    state.picture = render_view(render_rgb(view, image.window), image.geometry, layers(session),
                                session.state.active, state.pending)
    return state.picture


def legend(state: DemoState | None) -> str:
    if state is None or state.session is None:
        return "<div class='limis-legend'><em>Load an image or press “Example case”.</em></div>"
    return legend_html(layers(state.session), state.session.state.active)


def structure_rows(session: Session) -> list[list]:
    """Per structure: pixels and area on this slice, voxels and volume over all slices, Dice here."""
    labelmap, names = session.labelmap()
    counts = np.bincount(labelmap.ravel(), minlength=max(names, default=0) + 1)
    row_mm, col_mm = session.current_image().geometry.pixel_spacing_mm
    rows = []
    for layer in layers(session):
        pixels = int(layer.mask.sum()) if layer.mask is not None else 0
        dice = session.dice(layer.name)
        voxels = int(counts[layer.label_id]) if layer.label_id < counts.size else 0
        rows.append([layer.display, pixels, round(pixels * row_mm * col_mm / 100.0, 2), voxels,
                     round(voxels * session.volume.voxel_volume_ml, 2), "" if dice is None else round(dice, 3)])
    return rows


def slider_range(session: Session) -> tuple[int, int]:
    """(last slice index, current index) of the current plane."""
    return slice_count(session.volume.shape, Plane(session.view.plane)) - 1, session.view.index
