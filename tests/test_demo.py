"""The Gradio demo, launched in-process and driven over HTTP with gradio_client like a collaborator would.

Real LiteMedSAM on single slices (embeddings shared through the session-wide disk cache); the
renderer's orientation letters and click mapping are checked without a server.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import nibabel as nib
import numpy as np
import pytest

from limis.demo.app import READY_LINE, build_app, launch_options
from limis.demo.config import DemoConfig, parse_auth, read_auth_file
from limis.errors import LimisError
from limis.pipeline.models import ModelOptions

# Viewer outputs as the client sees them (the gr.State is hidden from the API).
IMAGE, LEGEND, TABLE, CHAT, STATUS, SLIDER = 0, 1, 2, 3, 4, 5
REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def serve(config: DemoConfig, segmenter):
    app = build_app(config, segmenter)
    app.launch(prevent_thread_lock=True, quiet=True, **launch_options(config))
    try:
        yield app, f"http://127.0.0.1:{config.port}/"
    finally:
        app.close()


def client(url: str):
    from gradio_client import Client

    return Client(url, verbose=False)


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory, litemedsam, embedding_cache_dir):
    root = tmp_path_factory.mktemp("demo")
    config = DemoConfig(port=free_port(), temp_dir=root / "served", log_dir=root / "logs",
                        models=ModelOptions(cache_dir=embedding_cache_dir))
    with serve(config, litemedsam) as (app, url):
        yield app, url, config


@pytest.fixture(scope="module")
def small_server(tmp_path_factory, litemedsam, embedding_cache_dir):
    """A second app sharing the same segmenter, with a 0.5 MB upload cap."""
    root = tmp_path_factory.mktemp("demo-small")
    config = DemoConfig(port=free_port(), temp_dir=root / "served", log_dir=root / "logs", max_upload_mb=0.5,
                        models=ModelOptions(cache_dir=embedding_cache_dir))
    with serve(config, litemedsam) as (app, url):
        yield app, url, config


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * np.logical_and(a, b).sum() / max(int(a.sum() + b.sum()), 1))


def downloaded(files) -> dict[str, Path]:
    return {Path(f).name.split("_")[-1]: Path(f) for f in files}


def structure_mask(out: dict[str, Path], name: str) -> np.ndarray:
    """Boolean source-grid mask of `name` from a downloaded labelmap + JSON."""
    table = json.loads(out["labels.json"].read_text())
    label_id = next(row["id"] for row in table["labels"] if row["name"] == name)
    return np.asarray(nib.load(str(out["labels.nii.gz"])).dataobj) == label_id


@pytest.mark.slow
def test_golden_flow_on_the_shared_ct(demo_server, totalseg_dir, total_names):
    """The CT alone (the text detector): 'left kidney' is a 3D mask with 3D Dice >= 0.85, shown where it is;
    'bigger' + 'apply to all slices' reach every slice of it; 'undo' twice restores the exact 3D mask."""
    _, url, config = demo_server
    ct, ref = totalseg_dir / "example_ct.nii.gz", totalseg_dir / "example_seg_fast_force_split.nii.gz"
    kidney_id = next(i for i, n in total_names.items() if n == "kidney_left")
    truth = np.asarray(nib.load(str(ref)).dataobj) == kidney_id
    user = client(url)
    from gradio_client import handle_file

    def labels_now() -> np.ndarray:
        files, note = user.predict(api_name="/download")
        out = downloaded(files)
        assert {"labels.nii.gz", "labels.json", "labels.report.json", "view.png"} <= set(out), note
        return structure_mask(out, "kidney_left")

    assert user.predict("P01", api_name="/study_start").startswith("Study session")
    loaded = user.predict([handle_file(str(ct))], "radiological", None, None, api_name="/load")
    assert loaded[STATUS].startswith("Loaded example_ct.nii.gz") and "lite-grounding" in loaded[-1]
    found = user.predict("left kidney", api_name="/query")
    assert "Segmented Left kidney: axial slices" in found[STATUS]
    shown = found[SLIDER]["value"]
    assert truth[:, :, shown].any()  # the view went to the kidney (it opened on the pelvis)
    assert "data-structure='kidney_left'" in found[LEGEND] and found[TABLE]["data"][0][3] > 1000  # voxels, all slices
    start = labels_now()
    slices = np.flatnonzero(start.any(axis=(0, 1)))
    assert dice(start, truth) >= 0.85 and len(slices) > 15
    assert "this slice only" in user.predict("bigger", api_name="/query")[STATUS]
    spread = user.predict("apply to all slices", api_name="/query")[STATUS]
    assert f"Applied it to {len(slices) - 1} more slices" in spread
    grown = labels_now()
    changed = [z for z in slices if (grown[:, :, z] != start[:, :, z]).any()]
    assert len(changed) > len(slices) // 2  # LiteMedSAM ignores extra margin on some slices; every box grew
    user.predict(api_name="/undo")
    undone = user.predict(api_name="/undo")
    assert undone[STATUS].startswith("Undone") and undone[SLIDER]["value"] == shown  # undo never moves the view
    np.testing.assert_array_equal(labels_now(), start)

    files, _ = user.predict(api_name="/download")
    out = downloaded(files)
    record = json.loads(out["labels.report.json"].read_text())
    from limis.segment.builders import litemedsam_checkpoint
    from limis.weights import sha256_of

    assert record["models"]["segmenter"]["sha256"] == sha256_of(litemedsam_checkpoint())
    assert record["models"]["detector"]["name"] == "lite-grounding" and record["structures"] == ["kidney_left"]
    source, written = nib.load(str(ct)), nib.load(str(out["labels.nii.gz"]))
    assert written.shape == source.shape and np.allclose(written.affine, source.affine)
    log = next(Path(config.log_dir).glob("P01_*.jsonl"))
    commands = [json.loads(line) for line in log.read_text().splitlines() if '"command"' in line]
    assert [c["utterance"] for c in commands] == ["left kidney", "bigger", "apply to all slices", "undo", "undo"]
    assert [c["scope"] for c in commands] == ["volume", "slice", "all slices", "undo", "undo"]


def test_the_page_lists_what_can_be_said(box_segmenter, tmp_path):
    """The grammar and the vocabulary are on the page, with what the text detector was trained to find."""
    config = DemoConfig(port=free_port(), temp_dir=tmp_path / "served", log_dir=tmp_path / "logs")
    app = build_app(config, box_segmenter)
    config_json = json.dumps(app.get_config_file(), default=str)
    assert "What can I say?" in config_json and "apply to all slices" in config_json
    assert "Left kidney" in config_json and "found by text" in config_json and "limis vocab" not in config_json


def shifted_phantom(folder: Path, seed: int, shift: int) -> dict[str, Path]:
    """The phantom (noise seed `seed`) with image and labels rolled `shift` voxels along the first axis, cut to
    the 2 axial slices through the middle of the left kidney (fewer encodes; every slice still shows it)."""
    from limis.imaging.phantom import make_phantom

    paths = make_phantom(folder, seed=seed)
    for key in ("image", "labels"):
        image = nib.load(str(paths[key]))
        slab = nib.Nifti1Image(np.roll(np.asarray(image.dataobj), shift, axis=0), image.affine).slicer[:, :, 12:14]
        nib.save(slab, str(paths[key]))
    return paths


@pytest.mark.slow
def test_eight_concurrent_sessions_keep_their_own_images(demo_server, tmp_path):
    """8 clients at once on 8 different images: each gets the mask of its own image, and the app stays up."""
    _, url, _ = demo_server
    cases = [shifted_phantom(tmp_path / f"case{i}", seed=i, shift=4 * i) for i in range(8)]

    def one_user(case: dict[str, Path]) -> dict[str, Path]:
        from gradio_client import handle_file

        user = client(url)
        user.predict([handle_file(str(case["image"]))], "radiological", handle_file(str(case["labels"])),
                     handle_file(str(case["label_map"])), api_name="/load")
        assert "Segmented Left kidney" in user.predict("left kidney", api_name="/query")[STATUS]
        return downloaded(user.predict(api_name="/download")[0])

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(one_user, cases))
    print(f"8 concurrent sessions: {time.perf_counter() - started:.1f} s")
    references = [np.asarray(nib.load(str(c["labels"])).dataobj) == 3 for c in cases]  # phantom kidney_left id
    for number, out in enumerate(results):
        mask = structure_mask(out, "kidney_left")
        scores = [dice(mask, ref) for ref in references]  # 3D: each query segments its own volume
        assert int(np.argmax(scores)) == number and scores[number] >= 0.85, (number, np.round(scores, 2))
    assert client(url).predict(api_name="/example")[STATUS].startswith("Loaded the example phantom")


@pytest.mark.slow
def test_bad_uploads_show_one_line_and_keep_the_session(small_server, tmp_path):
    """Corrupt, empty, unsupported and oversize uploads: a visible one-line warning, the old case stays."""
    from gradio_client import handle_file

    app, url, config = small_server
    user = client(url)
    assert user.predict(api_name="/example")[STATUS].startswith("Loaded the example phantom")
    before = user.predict("left kidney", api_name="/query")
    assert before[TABLE]["data"][0][0] == "Left kidney"

    example = Path(config.temp_dir) / "example" / "phantom_ct.nii.gz"
    corrupt = tmp_path / "corrupt.nii.gz"
    corrupt.write_bytes(example.read_bytes()[: example.stat().st_size // 2])
    empty, text = tmp_path / "empty.nii.gz", tmp_path / "notes.txt"
    empty.write_bytes(b"")
    text.write_text("not an image")
    fake_dicoms = [tmp_path / f"slice{i}.dcm" for i in range(2)]
    for path in fake_dicoms:
        path.write_bytes(b"\0" * 300_000)  # each under the 0.5 MB cap, together over it
    for files, expected in (([corrupt], "corrupt.nii.gz"), ([empty], "empty"), ([text], "unsupported"),
                            (fake_dicoms, "over this demo's 0.5 MB limit")):
        result = user.predict([handle_file(str(f)) for f in files], "radiological", None, None, api_name="/load")
        status = result[STATUS]
        assert status.startswith("⚠️") and expected in status and "\n" not in status, status
        assert "Traceback" not in status and "/tmp" not in status and str(tmp_path) not in status
        assert result[TABLE] == before[TABLE] and result[IMAGE] is not None  # the session is unchanged

    oversize = tmp_path / "big.nii.gz"
    oversize.write_bytes(b"\0" * (config.max_upload_bytes + 1))
    with pytest.raises(ValueError, match="exceeds the maximum file size") as refused:
        user.predict([handle_file(str(oversize))], "radiological", None, None, api_name="/load")
    assert "\n" not in str(refused.value)
    raw = httpx.post(f"{url}gradio_api/upload", files={"files": ("big.nii.gz", oversize.read_bytes())})
    assert raw.status_code == 413  # the server enforces the cap too, whatever the client does
    after = user.predict("bigger", api_name="/query")
    assert after[STATUS].startswith("Made the box bigger") and after[TABLE]["data"][0][0] == "Left kidney"
    assert user.predict("bone", api_name="/window")[STATUS].startswith("Using the bone window.")
    coronal = user.predict("coronal", api_name="/plane")
    assert coronal[STATUS].startswith("Showing the coronal view") and coronal[SLIDER]["maximum"] == 95  # phantom A-P


@pytest.mark.slow
def test_dicom_series_upload_gives_a_dicom_seg(demo_server, totalseg_dir):
    """Several .dcm-less DICOM files -> one series folder; downloads include a DICOM-SEG."""
    import pydicom
    from gradio_client import handle_file

    _, url, _ = demo_server
    user = client(url)
    series = sorted((totalseg_dir / "dicom_example_ct").iterdir())
    loaded = user.predict([handle_file(str(f)) for f in series], "radiological",
                          handle_file(str(totalseg_dir / "example_seg_dicom.nii.gz")),
                          handle_file(str(totalseg_dir / "label_map.json")), api_name="/load")
    assert loaded[STATUS].startswith("Loaded 20 DICOM files") and "512×512×20" in loaded[STATUS]
    found = user.predict("liver", api_name="/query")
    assert "Segmented Liver" in found[STATUS] and found[TABLE]["data"][0][-1] >= 0.85
    files, _ = user.predict(api_name="/download")
    seg = pydicom.dcmread(str(downloaded(files)["seg.dcm"]))
    assert seg.Modality == "SEG" and seg.SegmentSequence[0].SegmentLabel == "liver"


def test_only_the_demo_temp_dir_is_served(demo_server, totalseg_dir):
    app, url, config = demo_server
    assert app.analytics_enabled is False and app.max_file_size == config.max_upload_bytes
    for private in (totalseg_dir / "example_ct.nii.gz", REPO / "README.md", Path(config.log_dir)):
        assert httpx.get(f"{url}gradio_api/file={private}").status_code in (403, 404)
    example = Path(config.temp_dir) / "example" / "phantom_labels.json"
    assert httpx.get(f"{url}gradio_api/file={example}").status_code == 200


def test_study_mode_writes_log_and_questionnaire(demo_server):
    _, url, config = demo_server
    user = client(url)
    # Endpoints with one visible output return it bare (the gr.State is hidden).
    assert user.predict("Jane Doe", api_name="/study_start").startswith("⚠️ participant id")
    assert user.predict("task_1", api_name="/task_start").startswith("⚠️ start the study first")
    assert user.predict("P02", api_name="/study_start").startswith("Study session")
    assert "task_1 started" in user.predict("task_1", api_name="/task_start")
    assert "stopped after" in user.predict("task_1", api_name="/task_stop")
    missing = user.predict(*([5] * 9 + [None]), *([20] * 6), api_name="/questionnaire")
    assert missing.startswith("⚠️ please answer every SUS statement") and "sus_10" in missing
    sus = [5, 1, 5, 1, 5, 1, 5, 1, 5, 1]
    tlx = [10, 0, 20, 15, 30, 5]
    assert "saved" in user.predict(*sus, *tlx, api_name="/questionnaire")
    answers = json.loads(next(Path(config.log_dir).glob("P02_*_questionnaire.json")).read_text())
    expected = {f"sus_{i}" for i in range(1, 11)} | {"tlx_mental", "tlx_physical", "tlx_temporal", "tlx_performance",
                                                    "tlx_effort", "tlx_frustration"}
    assert expected <= set(answers) and answers["participant"] == "P02"
    events = [json.loads(line)["event"] for line in next(Path(config.log_dir).glob("P02_*.jsonl")).read_text().splitlines()]
    assert events == ["study_start", "task_start", "task_end"]

    from limis.eval.usability import load_study  # the study analysis reads what the demo wrote

    study = load_study(config.log_dir)
    form = next(q for q in study.questionnaires if q.participant == "P02")
    task = next(t for t in study.tasks if t.participant == "P02")
    assert form.sus == 100.0 and form.tlx_raw == pytest.approx(80 / 6)
    assert (task.task_id, task.timing) == ("task_1", "markers")


def test_orientation_letters_follow_the_geometry():
    """Screen-left shows the patient's right (radiological) on RAS and LPS files, in every plane."""
    from limis.demo.render import edge_letters
    from limis.imaging.display import Plane, SliceGeometry
    from limis.imaging.volume import canonical_affine

    for source in (np.diag([3.0, 3.0, 4.0, 1.0]), np.diag([-3.0, -3.0, 4.0, 1.0])):
        affine = canonical_affine(source, (20, 30, 10))
        letters = {plane: edge_letters(SliceGeometry((20, 30, 10), affine, plane, 5)) for plane in Plane}
        assert letters[Plane.AXIAL] == {"left": "R", "right": "L", "top": "A", "bottom": "P"}
        assert letters[Plane.CORONAL] == {"left": "R", "right": "L", "top": "S", "bottom": "I"}
        assert letters[Plane.SAGITTAL] == {"left": "A", "right": "P", "top": "S", "bottom": "I"}


def offline_shared(tmp_path: Path, segmenter):
    """Shared demo resources without a server (fast test double as the segmenter)."""
    from limis.demo.state import Shared
    from limis.demo.study import DEFAULT_TASKS
    from limis.imaging.phantom import make_phantom

    return Shared(DemoConfig(temp_dir=tmp_path), tmp_path, segmenter, make_phantom(tmp_path / "ex"), DEFAULT_TASKS)


def test_two_clicks_draw_a_box_in_slice_pixels(box_segmenter, tmp_path):
    """The box fallback maps screen clicks back through the picture's scale to display-slice pixels."""
    from limis.demo import actions
    from limis.demo.state import draw, new_state, open_case
    from limis.imaging import load_image

    shared = offline_shared(tmp_path, box_segmenter)
    state = new_state(tmp_path)
    open_case(shared, state, load_image(shared.example["image"]), None, "phantom", actions.NO_DETECTOR)
    picture = draw(state)
    assert picture.rgb.shape[:2] == (439, 512)  # 96 x 112 display pixels of 3 x 3 mm, longest side 512
    with pytest.raises(LimisError, match="Structure for the box"):
        actions.click(state, "", (10, 10))
    assert "First corner" in actions.click(state, "left kidney", (20 * picture.col_scale, 30 * picture.row_scale))
    assert "Box set" in actions.click(state, "left kidney", (40 * picture.col_scale, 50 * picture.row_scale))
    assert state.session.box("kidney_left") == pytest.approx((20, 30, 40, 50))
    assert int(state.session.mask("kidney_left").sum()) == 21 * 21


def test_png_view_convention_is_redisplayed_radiologically(box_segmenter, tmp_path):
    """A 2D picture has no geometry: its stated convention decides how it is turned to the radiological view."""
    from PIL import Image

    from limis.demo import actions
    from limis.demo.render import edge_letters
    from limis.demo.state import discard, draw, new_state
    from limis.imaging.display import Plane, display_slice

    pixels = (np.random.default_rng(0).random((40, 60)) * 255).astype(np.uint8)
    png = tmp_path / "slice.png"
    Image.fromarray(pixels).save(png)
    shared, state = offline_shared(tmp_path, box_segmenter), new_state(tmp_path)
    for view, turned in (("radiological", pixels), ("neurological", pixels[:, ::-1]), ("rotated180", pixels[::-1, ::-1])):
        note = actions.load_upload(shared, state, [str(png)], view, None, None)
        assert note.startswith("Loaded slice.png") and "modality: OT" in note
        assert np.array_equal(display_slice(state.session.volume.array, Plane.AXIAL, 0), turned)
        letters = edge_letters(state.session.current_image().geometry)
        assert (letters["left"], letters["right"], letters["top"]) == ("R", "L", "A")
    assert draw(state).rgb.shape == (341, 512, 3) and actions.NO_DETECTOR in state.detector_note
    discard(state)
    assert not state.folder.exists()


def test_demo_warnings_name_the_cause(box_segmenter, tmp_path, capsys):
    """A user mistake shows the CLI's own line; a bug says so, what was kept and its type, and offers no retry."""
    from limis.cli import main
    from limis.demo import actions, study
    from limis.demo.app import _attempt
    from limis.demo.state import new_state
    from limis.pipeline.registry import read_label_names

    shared, state = offline_shared(tmp_path, box_segmenter), new_state(tmp_path)
    actions.load_example(shared, state)
    assert main(["vocab", "left banana"]) == 2
    cli_line = capsys.readouterr().err.strip().removeprefix("error:").strip()
    assert _attempt(lambda: actions.click(state, "left banana", (1, 1))) == f"⚠️ {cli_line}"
    assert _attempt(lambda: actions.set_plane(state, "oblique")).startswith("⚠️ unknown plane 'oblique'")
    with pytest.raises(LimisError, match="must be a number"):
        study.questionnaire_record(["x"] * 10, [50] * 6)
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(LimisError, match="JSON object of id -> name"):
        read_label_names(tmp_path / "list.json")

    def bug() -> str:
        raise ValueError("boom")

    shown = _attempt(bug)
    assert "ValueError" in shown and "bug in LIMIS" in shown and "kept" in shown and "report" in shown
    assert "try again" not in shown.lower() and "\n" not in shown


def _session_events(app) -> dict:
    """The app's own load (tab opens) and unload (tab closes) handlers, as Gradio calls them."""
    return {dep.targets[0][1]: dep.fn for dep in app.fns.values()
            if dep.targets and dep.targets[0][1] in ("load", "unload")}


def test_a_sessions_files_are_deleted_when_its_tab_closes(box_segmenter, tmp_path):
    """Folder, downloads (DICOM-SEG with the patient module included), uploads and Gradio's download copies."""
    import gradio as gr
    from gradio.processing_utils import hash_file
    from gradio.utils import get_upload_folder

    from limis.demo.app import DICOM_SEG_NOTE

    app = build_app(DemoConfig(temp_dir=tmp_path / "served"), box_segmenter)
    events = _session_events(app)
    tab, other = gr.Request(session_hash="tab-1"), gr.Request(session_hash="tab-2")
    state, kept = events["load"](None, tab), events["load"](None, other)
    seg = state.folder / "downloads" / "case_seg.dcm"
    seg.parent.mkdir()
    seg.write_bytes(b"pretend DICOM-SEG with a patient module")
    cached = Path(app.GRADIO_CACHE) / hash_file(seg) / seg.name  # where Gradio copies a served download
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_bytes(seg.read_bytes())
    upload = Path(get_upload_folder()) / f"limis-test-{state.session_id}" / "scan.nii.gz"
    upload.parent.mkdir(parents=True)
    upload.write_bytes(b"uploaded scan")
    state.uploads.add(upload)
    events["unload"](tab)
    assert not state.folder.exists() and not cached.exists() and not upload.parent.exists()
    assert kept.folder.is_dir()  # another tab's session is untouched
    assert "patient identifiers" in DICOM_SEG_NOTE
    assert any(DICOM_SEG_NOTE in str(c["props"].get("value", "")) for c in app.config["components"])


def test_a_served_sessions_folder_goes_when_the_browser_tab_closes(box_segmenter, tmp_path):
    """Over HTTP as a browser does it: the page's heartbeat opens the tab, its load event makes the session."""
    config = DemoConfig(port=free_port(), temp_dir=tmp_path / "served")
    with serve(config, box_segmenter) as (app, url):
        api, tab = f"{url}gradio_api", "tab-session-1"
        load = next(i for i, dep in app.fns.items() if dep.targets and dep.targets[0][1] == "load")
        with httpx.stream("GET", f"{api}/heartbeat/{tab}", timeout=None):  # the open tab
            joined = httpx.post(f"{api}/queue/join", json={"data": [None], "fn_index": load, "session_hash": tab,
                                                            "event_data": None, "trigger_id": None})
            joined.raise_for_status()
            with httpx.stream("GET", f"{api}/queue/data", params={"session_hash": tab}, timeout=30) as events:
                next(line for line in events.iter_lines() if "process_completed" in line)
            folders = list((Path(config.temp_dir) / "sessions").iterdir())
            assert len(folders) == 1
        deadline = time.time() + 20  # leaving the block closed the heartbeat: the tab is gone
        while folders[0].exists() and time.time() < deadline:
            time.sleep(0.2)
        assert not folders[0].exists()


def _lines_until(server: subprocess.Popen, wanted: str, timeout_s: float) -> list[str]:
    """Lines the server printed, read until one equals `wanted` (fails if it exits or the bound passes first)."""
    import queue
    import threading

    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line.rstrip("\n")) for line in server.stdout], daemon=True).start()
    seen, deadline = [], time.time() + timeout_s
    while time.time() < deadline:
        try:
            seen.append(lines.get(timeout=1.0))
        except queue.Empty:
            assert server.poll() is None, seen
            continue
        if seen[-1] == wanted:
            return seen
    raise AssertionError(f"no {wanted!r} within {timeout_s} s: {seen}")


def test_the_temp_root_is_deleted_when_the_demo_stops(tmp_path):
    """Ctrl-C and SIGTERM both stop the server cleanly and remove the temp root `launch` made."""
    import signal

    script = ("import sys; sys.path.insert(0, sys.argv[2]); from conftest import BoxSegmenter; "
              "from limis.demo.app import launch; from limis.demo.config import DemoConfig; "
              "launch(DemoConfig(port=int(sys.argv[1])), BoxSegmenter())")
    for stop in (signal.SIGINT, signal.SIGTERM):
        temp, port = tmp_path / stop.name, free_port()
        temp.mkdir()
        env = {**__import__("os").environ, "TMPDIR": str(temp), "PYTHONPATH": str(REPO)}
        server = subprocess.Popen([sys.executable, "-c", script, str(port), str(REPO / "tests")], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            printed = _lines_until(server, READY_LINE, timeout_s=300)  # start-up over, not a fixed sleep
            roots = list(temp.glob("limis-demo-*"))
            assert len(roots) == 1 and (roots[0] / "example").is_dir(), printed
            server.send_signal(stop)
            assert server.wait(timeout=120) == 0, server.stdout.read()
        finally:
            if server.poll() is None:
                server.kill()
        assert not roots[0].exists(), stop.name


def test_a_huge_picture_is_refused_before_it_is_decoded(tmp_path):
    """A ~150 kB PNG of 12000 x 12000 pixels: one refusal line, and the demo's peak memory barely moves."""
    from PIL import Image

    png = tmp_path / "huge.png"
    Image.new("L", (12000, 12000)).save(png, optimize=True)
    assert png.stat().st_size < 1_000_000
    script = """
import resource, sys
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from conftest import BoxSegmenter
from limis.demo import actions
from limis.demo.app import _attempt
from limis.demo.config import DemoConfig
from limis.demo.state import Shared, new_state
from limis.demo.study import DEFAULT_TASKS
from limis.imaging.phantom import make_phantom
root = Path(sys.argv[3])
shared = Shared(DemoConfig(temp_dir=root), root, BoxSegmenter(), make_phantom(root / "ex"), DEFAULT_TASKS)
state = new_state(root)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
shown = _attempt(lambda: actions.load_upload(shared, state, [sys.argv[1]], "radiological", None, None))
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
print(shown)
"""
    done = subprocess.run([sys.executable, "-c", script, str(png), str(REPO / "tests"), str(tmp_path / "demo")],
                          capture_output=True, text=True, timeout=300, env={**__import__("os").environ,
                                                                            "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    grown_mb, shown = done.stdout.strip().splitlines()[-2:]
    assert int(grown_mb) < 50, f"peak RSS grew by {grown_mb} MB"
    assert shown == ("⚠️ huge.png is 12000 x 12000 pixels (144.0 million); this demo takes pictures up to "
                     "33.6 million pixels; downscale it first.")


def test_microphone_is_hidden_without_an_asr_model(box_segmenter, tmp_path):
    from limis.demo.asr import Transcriber

    app = build_app(DemoConfig(temp_dir=tmp_path), box_segmenter)
    audio = [c for c in app.config["components"] if c["type"] == "audio"]
    assert len(audio) == 1 and audio[0]["props"]["visible"] is False
    assert app.analytics_enabled is False
    with pytest.raises(LimisError, match="no such ASR model folder"):
        Transcriber(tmp_path / "no-model")


def test_auth_parsing(tmp_path):
    assert parse_auth("reader:pa:ss") == ("reader", "pa:ss")
    with pytest.raises(LimisError, match="USER:PASSWORD"):
        parse_auth("reader")
    users = tmp_path / "users.txt"
    users.write_text("# collaborators\nalice:s3cret-a\n\nbob:two\n")
    assert read_auth_file(users) == (("alice", "s3cret-a"), ("bob", "two"))
    with pytest.raises(LimisError, match="cannot read"):
        read_auth_file(tmp_path / "missing.txt")
    assert "s3cret-a" not in repr(DemoConfig(auth=read_auth_file(users)))


def test_wrong_logins_are_delayed_then_locked_out():
    """Each wrong password waits; five in a row lock the name (even the right password) until the lockout ends."""
    import asyncio

    from limis.demo.auth import LoginGuard

    now = [0.0]
    guard = LoginGuard((("reader", "s3cret"),), max_failures=5, lockout_s=300, delay_s=0.05, clock=lambda: now[0])

    def check(user: str, password: str) -> bool:
        return asyncio.run(guard.check(user, password))

    assert check("reader", "s3cret")
    started = time.perf_counter()
    assert not any(check("Reader", f"guess{i}") for i in range(5))
    assert time.perf_counter() - started >= 5 * 0.05  # every refusal is delayed
    assert guard.locked("reader") and not check("reader", "s3cret")  # locked, right password or not
    now[0] = 301.0
    assert check("reader", "s3cret") and not guard.locked("reader")
    options = launch_options(DemoConfig(auth=(("reader", "s3cret"),), temp_dir=Path("/tmp")))
    assert options["auth"].__self__.max_failures == 5  # the demo's login goes through a guard


def test_served_login_locks_out_after_five_wrong_passwords(box_segmenter, tmp_path):
    config = DemoConfig(port=free_port(), temp_dir=tmp_path / "served", auth=(("reader", "s3cret"),))
    with serve(config, box_segmenter) as (_, url):
        def login(password: str) -> httpx.Response:
            return httpx.post(f"{url}login", data={"username": "reader", "password": password}, timeout=30)

        started = time.perf_counter()
        assert [login(f"guess{i}").status_code for i in range(5)] == [400] * 5
        assert time.perf_counter() - started >= 4.5  # about a second per wrong password
        assert login("s3cret").status_code == 400  # locked out, right password or not


def test_task_files_in_json_and_yaml(tmp_path):
    from limis.demo.study import DEFAULT_TASKS, Task, load_tasks

    assert load_tasks(None) == DEFAULT_TASKS and len(DEFAULT_TASKS) == 3
    (tmp_path / "tasks.json").write_text(json.dumps(["segment the spleen", {"id": "t2", "text": "left kidney"}]))
    (tmp_path / "tasks.yaml").write_text("tasks:\n  - segment the spleen\n  - {id: t2, text: left kidney}\n")
    for name in ("tasks.json", "tasks.yaml"):
        assert load_tasks(tmp_path / name) == (Task("task_1", "segment the spleen"), Task("t2", "left kidney"))
    (tmp_path / "bad.yaml").write_text("tasks: [{id: t1}]\n")
    with pytest.raises(LimisError, match="task 1 needs a text"):
        load_tasks(tmp_path / "bad.yaml")


def test_cli_refuses_a_malformed_auth_in_one_line(capsys):
    from limis.cli import main

    assert main(["demo", "--auth", "no-colon"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error:") and "USER:PASSWORD" in error and "Traceback" not in error


@pytest.mark.slow
def test_launcher_serves_on_localhost_with_login(tmp_path):
    """`python demos/limis_demo.py` starts the same app: 127.0.0.1 only, login page when --auth is set."""
    port = free_port()
    users = tmp_path / "users.txt"
    users.write_text("reader:s3cret\n")
    command = [sys.executable, str(REPO / "demos" / "limis_demo.py"), "--port", str(port), "--auth-file", str(users),
               "--log-dir", str(tmp_path / "logs")]
    server = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _lines_until(server, READY_LINE, timeout_s=300)  # models loaded and serving, however busy the machine
        page = httpx.get(f"http://127.0.0.1:{port}/config", timeout=30)
        assert page.status_code in (401, 403)  # auth is required before the app config is served
        login = httpx.post(f"http://127.0.0.1:{port}/login", data={"username": "reader", "password": "s3cret"},
                           timeout=30)
        assert login.status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=120)


def test_the_structure_table_never_cuts_names(tmp_path, box_segmenter) -> None:
    """Long names wrap instead of being cut, so 'Left upper lung lobe' and 'Right upper lung lobe' stay apart."""
    import gradio as gr

    app = build_app(DemoConfig(temp_dir=tmp_path / "served"), box_segmenter)
    tables = [block for block in app.blocks.values() if isinstance(block, gr.Dataframe) and block.elem_id == "limis-table"]
    assert len(tables) == 1 and tables[0].wrap is True and tables[0].max_chars is None


def test_the_modality_menu_overrides_the_guess_and_says_so(tmp_path, box_segmenter) -> None:
    """A CT clipped to [-125, 275] HU is guessed MR; the menu's CT reaches the session, and the note names both."""
    from limis.demo import actions
    from limis.demo.state import new_state

    data = np.clip(np.random.default_rng(0).normal(40, 80, size=(16, 16, 3)), -125, 275).astype(np.int16)
    path = tmp_path / "clipped_ct.nii.gz"
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(path))
    shared, state = offline_shared(tmp_path, box_segmenter), new_state(tmp_path)
    guessed = actions.load_upload(shared, state, [str(path)], "radiological", None, None)
    assert "modality: MR (guessed from intensities; set the Modality menu if wrong)" in guessed
    stated = actions.load_upload(shared, state, [str(path)], "radiological", None, None, "CT")
    assert "modality: CT (set by the Modality menu; the reader found MR)" in stated
    assert state.session.volume.modality == "CT"


def test_the_demo_says_what_the_reader_changed(tmp_path, box_segmenter) -> None:
    """NaN voxels are replaced by the reader; the demo's load note says so, as the CLI's warning line does."""
    from limis.demo import actions
    from limis.demo.state import new_state

    data = np.full((16, 16, 3), 40.0, dtype=np.float32)
    data[0, 0, :] = np.nan
    data[1, 1, 1] = -1000.0
    path = tmp_path / "nan_ct.nii.gz"
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(path))
    shared, state = offline_shared(tmp_path, box_segmenter), new_state(tmp_path)
    note = actions.load_upload(shared, state, [str(path)], "radiological", None, None)
    assert "Warning: 3 voxels were NaN/inf; set to the image minimum -1000." in note
