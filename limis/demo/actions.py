"""What each demo button does to one browser session's `DemoState`; no Gradio in here.

Every action returns a short note for the status line and raises `LimisError` (one line) for
anything the user can fix; the caller turns that into a visible warning and keeps the state.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np

from limis.demo import study
from limis.demo.render import with_caption
from limis.demo.state import DemoState, Shared, draw, layers, open_case, require_session
from limis.demo.uploads import safe_stem, stage_image
from limis.errors import LimisError
from limis.imaging.display import CT_WINDOWS, Plane
from limis.imaging.readers import modality_line
from limis.imaging.volume import Volume
from limis.interact.session import Progress

NO_DETECTOR = "no detector: draw a box (type the structure, then click two opposite corners on the image)"
MIN_BOX_PX = 2.0


def load_upload(shared: Shared, state: DemoState, files: list[str] | None, view: str,
                labels: str | None, label_map: str | None, modality: str | None = None) -> str:
    """Load uploaded image file(s), with an optional reference labelmap + label-map JSON (oracle, Dice);
    `modality` overrides the reader's guess (None: keep it)."""
    from limis.imaging import load_image

    if bool(labels) != bool(label_map):
        raise LimisError("give both the reference labelmap (.nii/.nii.gz) and its label-map JSON, or neither.")
    paths = [Path(f) for f in files or []]
    image_path = stage_image(paths, state.folder, shared.config.max_upload_bytes)
    try:
        volume = load_image(image_path, view=view, modality=modality)
    finally:  # a staged DICOM series is held in memory once read; drop the copies
        if image_path.parent == state.folder:
            shutil.rmtree(image_path, ignore_errors=True)
    reference = _reference(volume, Path(labels), Path(label_map)) if labels and label_map else None
    note = ("detector: oracle from the uploaded reference labels" if reference
            else "detector: lite-grounding (text -> box)" if shared.grounding is not None else NO_DETECTOR)
    case = safe_stem(paths[0]) if len(paths) == 1 else "dicom_series"
    open_case(shared, state, volume, reference, case, note)
    return _loaded_note(state, paths[0].name if len(paths) == 1 else f"{len(paths)} DICOM files")


def load_example(shared: Shared, state: DemoState) -> str:
    """The bundled synthetic phantom (not patient data) with its reference labels."""
    from limis.imaging import load_image

    volume = load_image(shared.example["image"])
    reference = _reference(volume, shared.example["labels"], shared.example["label_map"])
    open_case(shared, state, volume, reference, "phantom", "detector: oracle from the example's reference labels")
    return _loaded_note(state, "the example phantom (synthetic, not patient data)") + " Try “left kidney”."


def _reference(volume: Volume, labels: Path, label_map: Path) -> tuple[np.ndarray, dict[int, str]]:
    """The reference labelmap on the volume's canonical grid (aligned by affine) and its id -> name table."""
    from limis.imaging.align import load_labelmap_on
    from limis.pipeline.registry import read_label_names

    return load_labelmap_on(volume, labels), read_label_names(label_map)


def _loaded_note(state: DemoState, what: str) -> str:
    session = require_session(state)
    volume = session.volume
    shape = "×".join(str(s) for s in volume.shape)
    said = "".join(f" Warning: {line}." for line in volume.metadata.get("warnings", []))  # what the reader changed
    return (f"Loaded {what}: {shape} voxels; {modality_line(volume, 'the Modality menu')}. Showing "
            f"{session.view.plane} slice {session.view.index}; left/right always mean the patient's side "
            f"(radiological display).{said}")


def query(state: DemoState, text: str | None, progress: Progress | None = None) -> str:
    """One typed (or spoken) utterance through `Session.apply` (3D queries report to `progress`); the exchange
    goes to the chat."""
    session = require_session(state)
    text = (text or "").strip()
    if not text:
        raise LimisError("type a structure or a command, e.g. 'left kidney', 'bigger' or 'next slice'.")
    session.progress = progress
    try:
        reply = session.apply(text)
    finally:
        session.progress = None
    state.pending = None
    state.chat += [{"role": "user", "content": text}, {"role": "assistant", "content": reply.text}]
    return reply.text if reply.changed else f"⚠️ {reply.text}"


def command(state: DemoState, utterance: str) -> str:
    """A viewer control (slider, plane, window) as a logged command, kept out of the chat."""
    reply = require_session(state).apply(utterance)
    state.pending = None
    if not reply.changed:
        raise LimisError(reply.text)
    return reply.text


def go_to_slice(state: DemoState, index: float) -> str:
    session = require_session(state)
    return "" if int(index) == session.view.index else command(state, f"go to slice {int(index)}")


def set_plane(state: DemoState, plane: str) -> str:
    session = require_session(state)
    if plane not in {p.value for p in Plane}:
        raise LimisError(f"unknown plane '{plane}'; use one of: {', '.join(p.value for p in Plane)}.")
    return "" if plane == session.view.plane else command(state, plane)


def set_window(state: DemoState, window: str) -> str:
    session = require_session(state)
    if window not in CT_WINDOWS:
        raise LimisError(f"unknown window '{window}'; use one of: {', '.join(CT_WINDOWS)}.")
    return "" if window == session.view.window else command(state, f"{window} window")


def click(state: DemoState, structure_text: str | None, screen_xy: tuple[float, float]) -> str:
    """Box fallback: the first click sets a corner, the second the opposite one and segments."""
    session = require_session(state)
    structure = _one_structure(structure_text)
    if state.picture is None:
        raise LimisError("nothing is shown yet; load an image first.")
    x, y = state.picture.to_slice(*screen_xy)
    if state.pending is None:
        state.pending = (x, y)
        return f"First corner set for {_display(structure)}; now click the opposite corner."
    (x0, y0), state.pending = state.pending, None
    if abs(x - x0) < MIN_BOX_PX or abs(y - y0) < MIN_BOX_PX:
        raise LimisError("the two corners are too close; click two opposite corners of the structure.")
    box = (min(x0, x), min(y0, y), max(x0, x), max(y0, y))
    reply = session.set_box(structure, box)
    dice = session.dice(structure)
    text = reply.text + (f" Dice {dice:.2f}." if dice is not None else "")
    _log_box(state, structure, box)
    state.chat += [{"role": "user", "content": f"(box drawn for {_display(structure)})"},
                   {"role": "assistant", "content": text}]
    return text


def _one_structure(text: str | None) -> str:
    from limis import vocab

    if not (text or "").strip():
        raise LimisError("type the structure's name in 'Structure for the box' first, e.g. 'left kidney'.")
    structures = vocab.resolve(text.strip()).structures
    if len(structures) != 1:
        raise LimisError(f"'{text.strip()}' names {len(structures)} structures; a box needs one, e.g. 'left kidney'.")
    return structures[0]


def _display(name: str) -> str:
    from limis.vocab import display_name

    return display_name(name)


def _log_box(state: DemoState, structure: str, box: tuple[float, float, float, float]) -> None:
    session = require_session(state)
    if state.log is None:
        return
    mask = session.mask(structure)
    state.log.write({"event": "box", "structure": structure, "box": [round(v, 1) for v in box],
                     "plane": session.view.plane, "slice": session.view.index,
                     "mask_pixels": int(mask.sum()) if mask is not None else 0, "dice": session.dice(structure),
                     "image": session.volume.key})


def downloads(state: DemoState) -> tuple[str, list[Path]]:
    """Write the screenshot, and with any mask the NIfTI labelmap + JSON (+ DICOM-SEG for DICOM input)."""
    from limis.eval.provenance import report, report_bytes
    from limis.imaging.export import report_path, sidecar_path, write_dicom_seg, write_labelmap

    session = require_session(state)
    out = state.folder / "downloads"
    out.mkdir(exist_ok=True)
    picture = state.picture or draw(state)
    caption = f"{state.case} · {session.view.plane} slice {session.view.index} · {session.current_image().window.name}"
    shot = out / f"{state.case}_view.png"
    with_caption(picture, caption, layers(session)).save(shot)
    labelmap, names = session.labelmap()
    if not names:
        return "Nothing is segmented yet: only the screenshot was written.", [shot]
    nifti = write_labelmap(session.volume, labelmap, names, out / f"{state.case}_labels.nii.gz")
    files = [nifti, sidecar_path(nifti), shot]
    if session.volume.source_kind == "dicom":
        files.insert(2, write_dicom_seg(session.volume, labelmap, names, out / f"{state.case}_seg.dcm"))
    run_report = report_path(nifti)
    record = report(session.volume, {"segmenter": session.cache.segmenter, "detector": session.detector},
                    command="demo", structures=sorted(names.values()), outputs=[f.name for f in files] + [run_report.name])
    run_report.write_bytes(report_bytes(record))
    files.insert(-1, run_report)  # before the screenshot
    return f"Wrote {', '.join(f.name for f in files)} (on the input's own grid).", files


def start_study(shared: Shared, state: DemoState, participant_text: str | None) -> str:
    """Attach a JSONL interaction log for this participant and browser session."""
    participant = study.check_participant(participant_text or "")
    state.participant = participant
    state.log = study.open_log(shared.config.log_dir, participant, state.session_id)
    state.task_started.clear()
    if state.session is not None:
        state.session.log = state.log
    state.log.write({"event": "study_start"})
    return f"Study session {state.session_id} for {participant}: every command is logged to {state.log.path.name}."


def _require_study(state: DemoState):
    if state.log is None or state.participant is None:
        raise LimisError("start the study first: enter a participant id and press 'Start study session'.")
    return state.log


def _task(shared: Shared, task_id: str | None) -> study.Task:
    for task in shared.tasks:
        if task.id == task_id:
            return task
    raise LimisError("choose a task from the list first.")


def start_task(shared: Shared, state: DemoState, task_id: str | None) -> str:
    log, task = _require_study(state), _task(shared, task_id)
    state.task_started[task.id] = time.time()
    log.write({"event": "task_start", "task_id": task.id, "task": task.text})
    return f"{task.id} started at {time.strftime('%H:%M:%S')}: {task.text}"


def stop_task(shared: Shared, state: DemoState, task_id: str | None) -> str:
    log, task = _require_study(state), _task(shared, task_id)
    if task.id not in state.task_started:
        raise LimisError(f"{task.id} is not running; press 'Start task' first.")
    seconds = round(time.time() - state.task_started.pop(task.id), 2)
    log.write({"event": "task_end", "task_id": task.id, "seconds": seconds})
    return f"{task.id} stopped after {seconds:.1f} s."


def submit_questionnaire(shared: Shared, state: DemoState, sus: list, tlx: list) -> str:
    """Validate the SUS and NASA-TLX answers and write them as JSON next to the log."""
    _require_study(state)
    record = study.questionnaire_record(sus, tlx)
    path = study.write_questionnaire(shared.config.log_dir, state.participant, state.session_id, record)
    return f"Thank you: answers saved as {path.name}."
