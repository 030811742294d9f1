"""Usability analysis: SUS and raw TLX by hand, and a synthetic three-participant study end to end."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from limis.errors import LimisError
from limis.eval.report import markdown_table
from limis.eval.usability import (
    SUS_ITEMS,
    TLX_ITEMS,
    StudyLogWarning,
    load_study,
    nasa_tlx_raw,
    run_usability,
    sus_band,
    sus_score,
)

REPO = Path(__file__).resolve().parents[1]


# ---- SUS ----
def test_sus_neutral_best_worst():
    assert sus_score([3] * 10) == 50.0
    assert sus_score([5, 1] * 5) == 100.0  # strongly agree with positives, strongly disagree with negatives
    assert sus_score([1, 5] * 5) == 0.0


def test_sus_worked_example():
    # answers 4,1,5,2,3,3,4,2,5,1
    # odd items (answer - 1):  4-1 + 5-1 + 3-1 + 4-1 + 5-1 = 3 + 4 + 2 + 3 + 4 = 16
    # even items (5 - answer): 5-1 + 5-2 + 5-3 + 5-2 + 5-1 = 4 + 3 + 2 + 3 + 4 = 16
    # (16 + 16) * 2.5 = 80
    assert sus_score([4, 1, 5, 2, 3, 3, 4, 2, 5, 1]) == 80.0


@pytest.mark.parametrize("answers, item", [([3] * 9, "10 answers"), ([3, 3, 6] + [3] * 7, "sus_3"),
                                           ([0] + [3] * 9, "sus_1"), ([3.5] + [3] * 9, "sus_1"),
                                           ([True] + [3] * 9, "sus_1")])
def test_sus_rejects_bad_answers(answers, item):
    with pytest.raises(LimisError, match=item):
        sus_score(answers)


def test_sus_bands_bangor():
    assert [sus_band(s) for s in (100, 85.5, 85.4, 71.4, 71.3, 50.9, 50.8, 0)] == [
        "excellent", "excellent", "good", "good", "OK", "OK", "poor", "poor"]


# ---- raw TLX ----
def test_tlx_raw_is_the_mean_of_six():
    ratings = {"mental": 40, "physical": 10, "temporal": 30, "performance": 20, "effort": 50, "frustration": 30}
    assert nasa_tlx_raw(ratings) == pytest.approx(180 / 6)
    assert nasa_tlx_raw({f"tlx_{k}": v for k, v in ratings.items()}) == pytest.approx(30.0)


@pytest.mark.parametrize("change, item", [({"tlx_effort": 101}, "tlx_effort"), ({"tlx_mental": -5}, "tlx_mental"),
                                          ({"tlx_stress": 5}, "tlx_stress"), ({"tlx_temporal": "high"}, "tlx_temporal")])
def test_tlx_rejects_bad_ratings(change, item):
    ratings = {key: 50 for key in TLX_ITEMS} | change
    with pytest.raises(LimisError, match=item):
        nasa_tlx_raw(ratings)


def test_tlx_needs_all_six():
    with pytest.raises(LimisError, match="tlx_frustration"):
        nasa_tlx_raw({key: 50 for key in TLX_ITEMS[:-1]})


# ---- a synthetic study ----
def _command(t, utterance, edit, dice=None, seconds=0.1, action=None):
    return {"event": "command", "time": t, "utterance": utterance, "edit": edit,
            "edit_args": {"action": action} if action else ({} if edit else None),
            "changed": edit is not None, "reply": "", "seconds": seconds, "structure": None, "plane": "axial",
            "slice": 10, "mask_pixels": 0, "mask_area_mm2": 0.0, "dice": dice, "image": "abc"}


def _write_log(path: Path, session_id: str, participant: str, events: list, bad_lines: tuple = ()) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"session_id": session_id, "participant": participant, **e}) for e in events]
    lines[2:2] = bad_lines
    path.write_text("\n".join(lines) + "\n")


def _write_questionnaire(folder: Path, participant: str, sus: list, tlx: list) -> None:
    data = {"participant": participant, "session_id": f"s-{participant}", **dict(zip(SUS_ITEMS, sus)),
            **dict(zip(TLX_ITEMS, tlx))}
    (folder / f"{participant}_questionnaire.json").write_text(json.dumps(data))


def _start(t, task_id):
    return {"event": "task_start", "time": t, "task_id": task_id, "task": f"Outline the {task_id}."}


def _end(t, task_id):
    return {"event": "task_end", "time": t, "task_id": task_id}


@pytest.fixture()
def study_dir(tmp_path: Path) -> Path:
    root = tmp_path / "study"
    _write_log(root / "p01" / "session1.jsonl", "s1", "P01", [
        _start(1000, "kidney_left"),
        _command(1005, "left kidney", "Query", dice=0.80, seconds=0.5),
        _command(1010, "blah blah", None, dice=0.80, seconds=0.01),
        _command(1015, "bigger", "ScaleBox", dice=0.85, seconds=0.2),
        _command(1020, "undo", "Control", dice=0.80, seconds=0.01, action="undo"),
        _command(1025, "accept", "Control", dice=0.80, seconds=0.01, action="accept"),
        _end(1030, "kidney_left"),
        _start(1100, "spleen"),
        _command(1110, "spleen", "Query", seconds=0.4),
        _command(1120, "done", "Control", seconds=0.0, action="done"),
        _end(1160, "spleen"),
    ], bad_lines=("{not json", json.dumps({"event": "command", "session_id": "s1"})))
    _write_log(root / "p02.jsonl", "s2", "P02", [
        _start(2000, "kidney_left"),
        _command(2010, "left kidney", "Query", dice=0.70, seconds=0.3),
        _command(2020, "accept", "Control", dice=None, seconds=0.1, action="accept"),
        _command(2030, "move left 5 mm", "MoveBox", dice=0.90, seconds=0.2),  # after the accept: not counted
        _end(2050, "kidney_left"),
        _start(2100, "spleen"),
        _command(2110, "spleen", "Query", dice=0.5),
        _command(2130, "bigger", "ScaleBox", dice=0.6),  # no accept, no task_end
    ])
    _write_log(root / "day2" / "p03.jsonl", "s3", "P03", [  # no markers: the session is one task
        _command(3000, "liver", "Query", dice=0.9, seconds=1.0),
        _command(3040, "accept it", "Control", dice=0.95, seconds=0.0, action="accept"),
    ])
    _write_questionnaire(root, "P01", [4, 2] * 5, [40, 10, 30, 20, 50, 30])  # SUS 75, TLX 30
    _write_questionnaire(root, "P02", [5, 1] * 5, [10, 0, 10, 10, 20, 10])  # SUS 100, TLX 10
    _write_questionnaire(root, "P03", [3] * 10, [70, 20, 60, 50, 80, 60])  # SUS 50, TLX 340/6
    return root


def test_load_study_tasks_by_hand(study_dir: Path):
    with pytest.warns(StudyLogWarning):
        study = load_study(study_dir)
    assert (study.log_files, study.sessions, len(study.skipped_lines)) == (3, 3, 2)
    rows = {(t.participant, t.task_id): t for t in study.tasks}
    assert list(rows) == [("P01", "kidney_left"), ("P01", "spleen"), ("P02", "kidney_left"), ("P02", "spleen"),
                          ("P03", "session")]
    kidney = rows["P01", "kidney_left"]
    assert (kidney.seconds, kidney.timing, kidney.n_interactions, kidney.n_understood, kidney.n_not_understood,
            kidney.n_undo, kidney.accepted, kidney.dice_at_acceptance) == (30, "markers", 5, 4, 1, 1, True, 0.80)
    assert kidney.mean_processing_seconds == pytest.approx((0.5 + 0.01 + 0.2 + 0.01 + 0.01) / 5)
    spleen = rows["P01", "spleen"]
    assert (spleen.seconds, spleen.n_interactions, spleen.accepted, spleen.dice_at_acceptance) == (60, 2, True, None)
    assert rows["P02", "kidney_left"].dice_at_acceptance == 0.70  # accept event has no Dice: the one before it
    open_task = rows["P02", "spleen"]
    assert (open_task.seconds, open_task.timing, open_task.accepted, open_task.dice_at_acceptance) == (
        30, "events", False, None)
    whole = rows["P03", "session"]
    assert (whole.seconds, whole.n_interactions, whole.dice_at_acceptance) == (40, 2, 0.95)
    assert any("spleen has no task_end" in note for note in study.notes)


def test_run_usability_end_to_end(study_dir: Path, tmp_path: Path):
    with pytest.warns(StudyLogWarning):
        summary = run_usability(study_dir, tmp_path / "out")
    assert summary["counts"] == {"participants": 3, "sessions": 3, "tasks": 5, "tasks_accepted": 4,
                                 "questionnaires": 3, "questionnaires_superseded": 0, "log_files": 3,
                                 "skipped_log_lines": 2}
    people = {p["participant"]: p for p in summary["participants"]}
    assert [people[p]["sus"] for p in ("P01", "P02", "P03")] == [75.0, 100.0, 50.0]
    assert [people[p]["tlx_raw"] for p in ("P01", "P02", "P03")] == pytest.approx([30.0, 10.0, 340 / 6])
    assert (people["P01"]["median_task_seconds"], people["P01"]["median_interactions_per_task"]) == (45, 3.5)
    assert (people["P02"]["median_task_seconds"], people["P02"]["median_interactions_per_task"]) == (40, 2.5)
    assert (people["P02"]["tasks_accepted"], people["P02"]["n_tasks"]) == (1, 2)
    assert people["P03"]["mean_dice_at_acceptance"] == 0.95
    sus = summary["overall"]["sus"]
    assert (sus["n"], sus["mean"], sus["median"], sus["sd"]) == (3, 75.0, 75.0, 25.0)  # SD: sqrt((0+625+625)/2)
    assert summary["sus_band"] == "good"
    dice = summary["overall"]["dice_at_acceptance"]
    assert (dice["n"], dice["mean"]) == (3, pytest.approx((0.80 + 0.70 + 0.95) / 3))
    assert summary["tlx_subscales"]["effort"]["median"] == 50

    out = tmp_path / "out"
    for name in ("tasks.csv", "questionnaires.csv", "summary.json", "report.md", "sus_per_participant.png",
                 "tlx_subscales.png", "tasks.png"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "sus_per_participant.png").read_bytes()[:4] == b"\x89PNG"
    with (out / "tasks.csv").open() as handle:
        tasks = list(csv.DictReader(handle))
    assert len(tasks) == 5 and tasks[0]["n_undo"] == "1"
    report = (out / "report.md").read_text()
    assert "| P01 | 75.0 | good | 30.0 | 1 | 2 / 2 | 45.0 | 3.5 | 0.800 | 1 |" in report
    assert "skipped log lines: 2" in report and "Bangor" in report and "n = 3 participants" in report


def test_a_second_submission_is_kept_and_supersedes_the_first(tmp_path: Path):
    """The demo never overwrites answers; the analysis scores the latest and says how many it superseded."""
    from limis.demo.study import questionnaire_record, write_questionnaire

    first = write_questionnaire(tmp_path, "P01", "s1", questionnaire_record([3] * 10, [50] * 6))  # SUS 50
    second = write_questionnaire(tmp_path, "P01", "s1", questionnaire_record([5, 1] * 5, [10] * 6))  # SUS 100
    _write_questionnaire(tmp_path, "P02", [4, 2] * 5, [40] * 6)  # no `time`: still analysed
    assert first != second and json.loads(first.read_text())["sus_1"] == 3  # the first answers are still on disk
    study = load_study(tmp_path)
    assert [(q.participant, q.sus) for q in study.questionnaires] == [("P01", 100.0), ("P02", 75.0)]
    assert study.superseded == (first.name,)
    summary = run_usability(tmp_path, tmp_path / "out")
    assert summary["counts"]["questionnaires_superseded"] == 1
    report = (tmp_path / "out" / "report.md").read_text()
    assert "1 earlier submissions superseded" in report and first.name in report


@pytest.mark.filterwarnings("ignore::limis.eval.usability.StudyLogWarning")
def test_bad_questionnaire_names_file_and_item(study_dir: Path, tmp_path: Path):
    _write_questionnaire(study_dir, "P04", [3, 3, 7] + [3] * 7, [50] * 6)
    with pytest.raises(LimisError, match=r"P04_questionnaire\.json: sus_3 = 7"):
        run_usability(study_dir, tmp_path / "out")
    (study_dir / "P04_questionnaire.json").write_text(json.dumps({"participant": "P04", **dict.fromkeys(SUS_ITEMS, 3)}))
    with pytest.raises(LimisError, match=r"P04_questionnaire\.json: item 'tlx_mental' is missing"):
        load_study(study_dir)
    (study_dir / "P04_questionnaire.json").write_text("{oops")
    with pytest.raises(LimisError, match=r"P04_questionnaire\.json"):
        load_study(study_dir)


def test_logs_without_questionnaires(tmp_path: Path):
    _write_log(tmp_path / "logs" / "a.jsonl", "s9", "P09", [_command(10, "liver", "Query"), _command(12, "x", None),
                                                            _command(15, "done", "Control", action="done")])
    summary = run_usability(tmp_path / "logs", tmp_path / "out")
    assert summary["sus_band"] is None and summary["overall"]["sus"]["n"] == 0
    assert summary["tasks"][0]["seconds"]["median"] == 5 and summary["tasks"][0]["accepted"] == 1
    assert "sus_per_participant.png" not in summary["files"] and "tasks.png" in summary["files"]
    assert "No questionnaires" in (tmp_path / "out" / "report.md").read_text()


def test_empty_or_missing_folder(tmp_path: Path):
    with pytest.raises(LimisError, match="does not exist"):
        load_study(tmp_path / "nope")
    with pytest.raises(LimisError, match="nothing to analyse"):
        load_study(tmp_path)


def test_markdown_table():
    assert markdown_table(["a", "b"], [[1, None], ["x|y", 2.5]]) == "| a | b |\n|---|---|\n| 1 | – |\n| x\\|y | 2.5 |\n"


# ---- the instrument texts shipped for studies ----
def test_shipped_instruments_match_the_scorer_and_the_demo():
    """One source: the package's JSON (linked from evaluation/questionnaires/) feeds the scorer and the demo."""
    from limis.demo import questionnaire

    sus = json.loads((REPO / "evaluation/questionnaires/sus.json").read_text())
    assert [item["id"] for item in sus["items"]] == list(SUS_ITEMS) and len(SUS_ITEMS) == 10
    assert [item["tone"] for item in sus["items"]] == ["positive", "negative"] * 5
    assert questionnaire.SUS_ITEMS == tuple((item["id"], item["text"]) for item in sus["items"])
    tlx = json.loads((REPO / "evaluation/questionnaires/nasa_tlx.json").read_text())
    assert [s["id"] for s in tlx["subscales"]] == list(TLX_ITEMS) and len(TLX_ITEMS) == 6
    shown = {row[0]: row for row in questionnaire.TLX_SUBSCALES}
    for subscale in tlx["subscales"]:
        assert shown[subscale["id"]][1:4] == (subscale["name"], subscale["question"], subscale["definition"])
    tasks = yaml.safe_load((REPO / "evaluation/tasks/task_list_template.yaml").read_text())["tasks"]
    assert all({"id", "instruction", "image", "target", "max_minutes"} <= set(task) for task in tasks)
    assert len({task["id"] for task in tasks}) == len(tasks)
