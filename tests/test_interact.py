"""Command language, session state, undo, patient-side edits, logs, fuzz, and the chat REPL."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from limis.detect.oracle import OracleDetector
from limis.imaging import Plane, display_slice, load_image
from limis.imaging.align import load_labelmap_on
from limis.imaging.slice_image import box_from_mask
from limis.interact import InteractionLog, NotUnderstood, Session, parse
from limis.interact import commands as cmd
from limis.segment.cache import EmbeddingCache

PARSES = [
    # queries
    ("left kidney", cmd.Query(("kidney_left",), "replace")),
    ("segment the liver and spleen", cmd.Query(("liver", "spleen"), "replace")),
    ("please show me the spleen", cmd.Query(("spleen",), "replace")),
    ("also the aorta", cmd.Query(("aorta",), "add")),
    ("add the right kidney", cmd.Query(("kidney_right",), "add")),
    ("remove the spleen", cmd.Query(("spleen",), "remove")),
    ("delete liver", cmd.Query(("liver",), "remove")),
    # box edits
    ("bigger", cmd.ScaleBox(1.25)),
    ("make it a lot bigger", cmd.ScaleBox(1.5)),
    ("larger by 20%", cmd.ScaleBox(1.2)),
    ("smaller by 30%", cmd.ScaleBox(0.7)),
    ("shrink it a little", cmd.ScaleBox(1 / 1.1)),
    ("tighter", cmd.Tighten()),
    ("move left", cmd.MoveBox("left", 5.0, "mm")),
    ("move it to the patient's right by 1 cm", cmd.MoveBox("right", 10.0, "mm")),
    ("shift down 3 px", cmd.MoveBox("down", 3.0, "px")),
    ("move up by 7 mm", cmd.MoveBox("up", 7.0, "mm")),
    ("extend the top edge", cmd.MoveEdge("top", 5.0)),
    ("shrink the left edge by 4 mm", cmd.MoveEdge("left", -4.0)),
    ("extend the bottom edge 1 cm", cmd.MoveEdge("bottom", 10.0)),
    # points
    ("include the upper part", cmd.AddPoint(("top",), True)),
    ("add the lower pole", cmd.AddPoint(("bottom",), True)),
    ("exclude the lower left part", cmd.AddPoint(("bottom", "left"), False)),
    ("remove the top right corner", cmd.AddPoint(("right", "top"), False)),
    ("add a point at the middle", cmd.AddPoint((), True)),
    # selection
    ("the other one", cmd.Select("other")),
    ("no, the other side", cmd.Select("other_side")),
    ("the bigger one", cmd.Select("bigger")),
    ("the second candidate", cmd.Select("index", 1)),
    # navigation
    ("next slice", cmd.Navigate("relative", 1)),
    ("previous slice", cmd.Navigate("relative", -1)),
    ("go to slice 40", cmd.Navigate("absolute", 40)),
    ("up 5 slices", cmd.Navigate("relative", 5)),
    ("down two slices", cmd.Navigate("relative", -2)),
    ("coronal", cmd.SetPlane("coronal")),
    ("switch to the sagittal view", cmd.SetPlane("sagittal")),
    ("lung window", cmd.SetWindow("lung")),
    ("use the bone window", cmd.SetWindow("bone")),
    # control
    ("undo", cmd.Control("undo")),
    ("Please, undo!", cmd.Control("undo")),
    ("redo", cmd.Control("redo")),
    ("reset", cmd.Control("reset")),
    ("start over", cmd.Control("reset")),
    ("accept", cmd.Control("accept")),
    ("looks good", cmd.Control("accept")),
    ("done", cmd.Control("done")),
]


@pytest.mark.parametrize("utterance, expected", PARSES)
def test_parser(utterance: str, expected) -> None:
    edit = parse(utterance)
    if isinstance(expected, cmd.ScaleBox):
        assert isinstance(edit, cmd.ScaleBox) and edit.factor == pytest.approx(expected.factor)
    else:
        assert edit == expected


@pytest.mark.parametrize("utterance", ["", "banana", "left banana", "move diagonally", "rotate the box",
                                       "make it purple", "go to slice", "the seventh one"])
def test_parser_refusals_are_one_line_and_list_what_is_understood(utterance: str) -> None:
    with pytest.raises(NotUnderstood) as refused:
        parse(utterance)
    assert "\n" not in str(refused.value)


def _session(volume, segmenter, **kwargs) -> Session:
    return Session(volume, EmbeddingCache(segmenter), **kwargs)


def _box_centre_patient_x(session: Session) -> float:
    box = session.box()
    geometry = session.current_image().geometry
    return float(geometry.pixel_to_patient((box[1] + box[3]) / 2, (box[0] + box[2]) / 2)[0])


@pytest.mark.parametrize("which", ["RAS", "LPS"])
def test_left_right_edits_follow_the_patient(which: str, totalseg_dir: Path, lps_copy: Path, box_segmenter) -> None:
    volume = load_image(totalseg_dir / "example_ct.nii.gz" if which == "RAS" else lps_copy)
    session = _session(volume, box_segmenter, index=80)
    session.set_box("kidney_left", (40, 40, 60, 60))
    x0 = _box_centre_patient_x(session)
    reply = session.apply("move left 9 mm")
    assert "patient's left (screen right)" in reply.text
    assert _box_centre_patient_x(session) == pytest.approx(x0 - 9.0)  # patient's left is -x in RAS
    session.apply("move right by 6 mm")
    assert _box_centre_patient_x(session) == pytest.approx(x0 - 3.0)
    before = session.box()
    session.apply("extend the left edge by 6 mm")  # the patient's-left edge is the screen's right edge
    assert session.box()[2] == pytest.approx(before[2] + 2.0) and session.box()[0] == before[0]
    session.apply("move up 3 mm")  # screen up = anterior on an axial slice
    geometry = session.current_image().geometry
    assert geometry.pixel_to_patient(session.box()[1], 0)[1] > geometry.pixel_to_patient(before[1], 0)[1]


def test_undo_restores_the_exact_previous_mask(totalseg_dir: Path, box_segmenter) -> None:
    volume = load_image(totalseg_dir / "example_ct.nii.gz")
    session = _session(volume, box_segmenter, index=80)
    session.set_box("liver", (20, 30, 50, 60))
    before = session.mask().copy()
    session.apply("bigger")
    assert not np.array_equal(session.mask(), before)
    session.apply("undo")
    np.testing.assert_array_equal(session.mask(), before)
    session.apply("redo")
    assert session.mask().sum() > before.sum()
    assert not session.apply("redo").changed


def test_unknown_commands_change_nothing(totalseg_dir: Path, box_segmenter) -> None:
    volume = load_image(totalseg_dir / "example_ct.nii.gz")
    session = _session(volume, box_segmenter, index=80)
    session.set_box("liver", (20, 30, 50, 60))
    state = session.state
    for utterance in ("banana", "move diagonally", "the other one", "move superior", "next slice please now"):
        reply = session.apply(utterance)
        if utterance == "next slice please now":
            assert reply.changed
            continue
        assert not reply.changed and session.state is state


def test_queries_candidates_other_side_and_log(totalseg_dir: Path, total_names, box_segmenter, tmp_path: Path) -> None:
    volume = load_image(totalseg_dir / "example_ct.nii.gz")
    labels = load_labelmap_on(volume, totalseg_dir / "example_seg_fast_force_split.nii.gz")
    log = InteractionLog(tmp_path / "study.jsonl", participant="P01")
    session = _session(volume, box_segmenter, detector=OracleDetector(labels, total_names),
                       reference=(labels, total_names), log=log, index=85)
    assert session.apply("left kidney").changed
    truth = box_from_mask(display_slice(labels == 3, Plane.AXIAL, 85))
    assert session.box("kidney_left") == truth
    assert session.apply("also the spleen").changed and set(session.state.objects) == {"kidney_left", "spleen"}
    reply = session.apply("the other side")  # active is the spleen: no side
    assert not reply.changed
    session.apply("left kidney")
    reply = session.apply("the other side")
    assert session.state.active == "kidney_right" and "kidney_left" not in session.state.objects
    session.apply("remove the right kidney")
    assert session.state.objects == {}
    assert session.apply("brain").changed is False  # absent on this slice: clear reply, no change
    lines = [json.loads(line) for line in (tmp_path / "study.jsonl").read_text().splitlines()]
    assert len(lines) == 7
    assert {"session_id", "utterance", "edit", "seconds", "mask_pixels", "dice", "participant"} <= set(lines[0])
    assert lines[0]["dice"] is not None and lines[0]["participant"] == "P01"
    assert not any("PatientName" in json.dumps(line) for line in lines)


def test_fuzz_500_commands_never_crash_or_corrupt_history(totalseg_dir: Path, total_names, box_segmenter) -> None:
    volume = load_image(totalseg_dir / "example_ct_sm.nii.gz")
    labels = load_labelmap_on(volume, totalseg_dir / "example_seg.nii.gz")
    session = _session(volume, box_segmenter, detector=OracleDetector(labels, total_names), index=15)
    vocabulary = [u for u, _ in PARSES] + ["go to slice 500", "down 40 slices", "banana", "", "move superior",
                                           "left kidney", "liver", "spleen", "kidneys", "move left 300 mm",
                                           "smaller by 99%", "bigger a lot", "tighter", "the other side"]
    rng = random.Random(7)
    for _ in range(500):
        utterance = rng.choice(vocabulary)
        depth = len(session.history)
        previous = session.state
        reply = session.apply(utterance)
        edit = reply.edit
        if not reply.changed:
            assert session.state is previous and len(session.history) == depth
        elif not (isinstance(edit, cmd.Control) and edit.action in ("undo", "redo")):
            assert len(session.history) == depth + 1 and session.history[-2] is previous
        state = session.state
        count = volume.shape[{"axial": 2, "coronal": 1, "sagittal": 0}[state.plane]]
        assert 0 <= state.index < count
        for obj in state.objects.values():
            for (plane, index), mask in obj.masks.items():
                assert mask.dtype == bool and mask.shape == display_slice(volume.array, Plane(plane), index).shape
            for box in obj.boxes.values():
                assert box[0] <= box[2] and box[1] <= box[3]
        if state.active is not None:
            assert state.active in state.objects
        labelmap, names = session.labelmap()
        assert labelmap.shape == volume.shape and set(np.unique(labelmap)) <= {0, *names}
    while len(session.history) > 1:
        session.undo()
    assert session.state.objects == {}


@pytest.mark.slow
def test_language_refinement_raises_dice_with_litemedsam(totalseg_dir: Path, total_names, litemedsam,
                                                          embedding_cache_dir: Path) -> None:
    """Poor start (box 40% too large, shifted 10 mm toward the patient's right) -> commands -> Dice >= 0.85."""
    volume = load_image(totalseg_dir / "example_ct.nii.gz")
    labels = load_labelmap_on(volume, totalseg_dir / "example_seg_fast_force_split.nii.gz")
    session = Session(volume, EmbeddingCache(litemedsam, disk_dir=embedding_cache_dir),
                      reference=(labels, total_names), index=85)
    truth = box_from_mask(display_slice(labels == 3, Plane.AXIAL, 85))
    geometry = session.current_image().geometry
    step = geometry.screen_direction("right")
    shift_px = 10.0 / geometry.pixel_spacing_mm[1] * step[1]
    cx, cy = (truth[0] + truth[2]) / 2 + shift_px, (truth[1] + truth[3]) / 2
    hw, hh = (truth[2] - truth[0]) / 2 * 1.4, (truth[3] - truth[1]) / 2 * 1.4
    session.set_box("kidney_left", (cx - hw, cy - hh, cx + hw, cy + hh))
    start = session.dice()
    assert start < 0.85
    history = [start]
    for utterance in ("move left 10 mm", "smaller by 25%", "tighter"):
        history.append(session.apply(utterance).dice)
    print("Dice per turn:", [round(d, 3) for d in history])
    assert history[-1] >= 0.85 and history[-1] > start
    previous = session.mask().copy()
    session.apply("bigger")
    session.apply("undo")
    np.testing.assert_array_equal(session.mask(), previous)


@pytest.mark.slow
def test_chat_cli_through_a_pipe(tmp_path: Path) -> None:
    from limis.imaging.phantom import make_phantom

    paths = make_phantom(tmp_path)
    log = tmp_path / "chat.jsonl"
    commands = "left kidney\nbigger\nbanana\nundo\nnext slice\ndone\n"
    done = subprocess.run(
        [sys.executable, "-c", "from limis.cli import entry; entry()", "chat", str(paths["image"]), "-o",
         str(tmp_path / "chat.nii.gz"), "--detector", "oracle", "--labels", str(paths["labels"]),
         "--label-map", str(paths["label_map"]), "--slice", "12", "--log", str(log)],
        input=commands, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert "Segmented Left kidney" in done.stdout and "did not understand 'banana'" in done.stdout
    assert (tmp_path / "chat.nii.gz").exists() and (tmp_path / "chat.json").exists()
    assert len(log.read_text().splitlines()) == 6


@pytest.mark.parametrize("words", ["help", "what can I say?", "commands"])
def test_help_answers_with_the_grammar_and_changes_nothing(words: str, tmp_path: Path, box_segmenter) -> None:
    from limis.imaging.phantom import make_phantom

    session = _session(load_image(make_phantom(tmp_path)["image"]), box_segmenter)
    before = session.state
    reply = session.apply(words)
    assert "left kidney" in reply.text and "undo" in reply.text and "patient's side" in reply.text
    assert not reply.changed and session.state is before


def test_done_with_nothing_segmented_says_so(tmp_path: Path, box_segmenter) -> None:
    from limis.imaging.phantom import make_phantom

    session = _session(load_image(make_phantom(tmp_path)["image"]), box_segmenter)
    assert session.apply("done").text == "Done: nothing is segmented, so there is nothing to save."
