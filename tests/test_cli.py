"""The `limis` CLI end to end: info, vocab, segment (oracle + real LiteMedSAM), one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from limis.cli import main


def _json_out(capsys) -> dict | list:
    return json.loads(capsys.readouterr().out)


def test_info_json_reports_orientation(totalseg_dir: Path, lps_copy: Path, capsys) -> None:
    expected = {totalseg_dir / "example_ct.nii.gz": "RAS", lps_copy: "LPS", totalseg_dir / "dicom_example_ct": "LPS"}
    for path, codes in expected.items():
        assert main(["info", str(path), "--json"]) == 0
        facts = _json_out(capsys)["input"]
        assert facts["source_orientation"] == codes
        assert facts["canonical_orientation"] == "RAS"
    assert facts["canonical_spacing_mm"] == pytest.approx([0.976562, 0.976562, 2.0])
    assert "PatientName" not in json.dumps(facts)


def test_vocab_cli(capsys) -> None:
    assert main(["vocab", "left renal", "--json"]) == 0
    assert _json_out(capsys)[0]["structures"] == ["kidney_left"]
    assert main(["vocab", "--json"]) == 0
    assert len(_json_out(capsys)) >= 117


def test_user_mistakes_are_one_line(tmp_path: Path, capsys) -> None:
    assert main(["vocab", "left banana"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and len(err.splitlines()) == 1 and "Did you mean" in err
    assert main(["info", str(tmp_path / "missing.nii.gz")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_segment_unknown_phrase_fails_before_loading(totalseg_dir: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    import limis.imaging as imaging
    import limis.pipeline.models as models

    def refuse(*args, **kwargs):
        raise AssertionError("a model was built or the image read before the phrase was checked")

    monkeypatch.setattr(models.ModelOptions, "build_segmenter", refuse)
    monkeypatch.setattr(imaging, "load_image", refuse)
    code = main(["segment", str(totalseg_dir / "example_ct.nii.gz"), "left banana", "-o", str(tmp_path / "x.nii.gz")])
    assert code == 2
    assert "Unknown structure" in capsys.readouterr().err
    assert not (tmp_path / "x.nii.gz").exists()


@pytest.mark.parametrize(("prompt", "expected"), [
    ("not the liver", "cannot segment everything except a structure"),
    ("liver tumor", "'tumor' is not a known part or modifier of the liver; LIMIS segments whole structures"),
    ("left right kidney", "say 'left kidney', 'right kidney' or 'both kidneys'"),
    ("левая почка", "not understood: LIMIS expects English anatomical terms"),
    ("spleeen", "Did you mean: spleen?"),
    ("banana", "Unknown structure 'banana'"),
    ("kidney " * 1500, "10500 characters long; LIMIS takes at most 200"),
])
def test_vocab_previews_exactly_what_segment_refuses(prompt: str, expected: str, tmp_path: Path, capsys) -> None:
    """`limis vocab` and `limis segment` (oracle on the phantom) print the same one line and exit 2."""
    from limis.imaging.phantom import make_phantom

    phantom = make_phantom(tmp_path)
    assert main(["vocab", prompt]) == 2
    previewed = capsys.readouterr().err.strip()
    code = main(["segment", str(phantom["image"]), prompt, "-o", str(tmp_path / "seg.nii.gz"), "--detector", "oracle",
                 "--labels", str(phantom["labels"]), "--label-map", str(phantom["label_map"])])
    refused = capsys.readouterr().err.strip()
    assert code == 2 and refused == previewed and expected in refused
    assert len(refused.splitlines()) == 1 and len(refused) < 300 and not (tmp_path / "seg.nii.gz").exists()


def test_vocab_uses_the_same_resolver_as_segment(monkeypatch, capsys) -> None:
    import limis.text

    seen = []
    real = limis.text.resolve_phrase
    monkeypatch.setattr(limis.text, "resolve_phrase", lambda phrase, **kw: seen.append(phrase) or real(phrase, **kw))
    assert main(["vocab", "left renal", "--json"]) == 0 and seen == ["left renal"]
    assert json.loads(capsys.readouterr().out)[0]["structures"] == ["kidney_left"]


@pytest.mark.parametrize(("runtime", "own_process", "lean"),
                         [("onnxruntime", True, True), ("torch", True, False), ("onnxruntime", False, False)])
def test_segment_makes_the_allocator_lean_only_in_its_own_process_on_an_export_runtime(
        tmp_path: Path, monkeypatch, runtime: str, own_process: bool, lean: bool) -> None:
    """glibc's trim threshold 0 keeps `limis segment`'s peak memory down on the ONNX engines but made torch 1.7x
    slower, and it lasts as long as the process: so never for torch, and never from `main()` inside a program."""
    import limis.segment.runtime

    asked = []
    monkeypatch.setattr(limis.segment.runtime, "onnxruntime_available", lambda: True)  # the decision, not the engine
    monkeypatch.setattr("limis.cli.segment_cmd.return_freed_memory", lambda: asked.append(runtime) or True)
    code = main(["segment", str(tmp_path / "absent.nii.gz"), "liver", "-o", str(tmp_path / "out.nii.gz"),
                 "--runtime", runtime], own_process=own_process)
    assert code == 2  # the missing image is refused after the choice, before any model loads
    assert asked == ([runtime] if lean else [])


def test_segment_missing_detector_weights_offline(totalseg_dir: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    code = main(["segment", str(totalseg_dir / "example_ct.nii.gz"), "liver", "-o", str(tmp_path / "x.nii.gz"),
                 "--detector", "grounding-dino"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "grounding-dino-tiny" in err and "--detector-weights" in err  # the flag that takes the folder


@pytest.mark.slow
def test_segment_oracle_left_kidney(totalseg_dir: Path, tmp_path: Path, total_names, capsys) -> None:
    out = tmp_path / "kidney.nii.gz"
    code = main(["segment", str(totalseg_dir / "example_ct.nii.gz"), "left kidney", "brain", "-o", str(out),
                 "--detector", "oracle", "--labels", str(totalseg_dir / "example_seg_fast_force_split.nii.gz"),
                 "--label-map", str(totalseg_dir / "label_map.json"), "--json"])
    assert code == 0
    report = _json_out(capsys)
    rows = {row["structure"]: row for row in report["structures"]}
    assert rows["brain"]["found"] is False
    assert rows["kidney_left"]["also_seen_on_slices"] == []  # an oracle knows its slices: nothing seen elsewhere
    written = nib.load(str(out))
    reference = nib.load(str(totalseg_dir / "example_seg_fast_force_split.nii.gz"))
    assert written.shape == reference.shape
    np.testing.assert_array_equal(written.affine, nib.load(str(totalseg_dir / "example_ct.nii.gz")).affine)
    table = json.loads(out.with_name("kidney.json").read_text())
    assert [row["name"] for row in table["labels"]] == ["kidney_left"]  # brain absent: no label for it
    mask = np.asarray(written.dataobj) == table["labels"][0]["id"]
    ref = np.asarray(reference.dataobj)
    dice = 2 * (mask & (ref == 3)).sum() / (mask.sum() + (ref == 3).sum())
    assert dice >= 0.85
    assert not (mask & (ref == 2)).any()  # never the right kidney


@pytest.mark.slow
def test_segment_dicom_writes_nifti_and_dicom_seg(totalseg_dir: Path, tmp_path: Path, capsys) -> None:
    import highdicom as hd

    out = tmp_path / "spleen.nii.gz"
    code = main(["segment", str(totalseg_dir / "dicom_example_ct"), "spleen", "-o", str(out), "--detector", "oracle",
                 "--labels", str(totalseg_dir / "example_seg_dicom.nii.gz"),
                 "--label-map", str(totalseg_dir / "label_map.json")])
    assert code == 0
    written = nib.load(str(out))
    assert written.shape == (512, 512, 20) and nib.aff2axcodes(written.affine) == ("L", "P", "S")
    seg = hd.seg.segread(str(tmp_path / "spleen.seg.dcm"))
    assert [d.SegmentLabel for d in seg.SegmentSequence] == ["spleen"]
    reference = nib.load(str(totalseg_dir / "example_seg_dicom.nii.gz"))  # stored LAS: compare in world space
    ref_on_lps = np.asarray(reference.dataobj)[:, ::-1, :] == 1
    mask = np.asarray(written.dataobj) > 0
    assert 2 * (mask & ref_on_lps).sum() / (mask.sum() + ref_on_lps.sum()) >= 0.85


@pytest.mark.slow
def test_readme_main_job_runs_as_a_command(tmp_path: Path) -> None:
    """The README's first command, minus the install: example phantom -> limis segment."""
    limis = [sys.executable, "-c", "from limis.cli import entry; entry()"]
    subprocess.run([*limis, "example", str(tmp_path)], check=True, capture_output=True)
    done = subprocess.run(
        [*limis, "segment", str(tmp_path / "phantom_ct.nii.gz"), "left kidney", "-o", str(tmp_path / "seg.nii.gz"),
         "--detector", "oracle", "--labels", str(tmp_path / "phantom_labels.nii.gz"),
         "--label-map", str(tmp_path / "phantom_labels.json")],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr
    mask = np.asarray(nib.load(str(tmp_path / "seg.nii.gz")).dataobj) > 0
    truth = np.asarray(nib.load(str(tmp_path / "phantom_labels.nii.gz")).dataobj) == 3
    assert 2 * (mask & truth).sum() / (mask.sum() + truth.sum()) >= 0.85


def test_eval_usability_cli(tmp_path: Path, capsys) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    events = [{"session_id": "s1", "participant": "P1", "time": 100.0 + i, "event": "command", "utterance": u,
               "edit": e, "edit_args": a, "changed": True, "reply": "", "seconds": 0.5, "structure": "liver",
               "plane": "axial", "slice": 3, "mask_pixels": 10, "mask_area_mm2": 90.0, "dice": d, "image": "x"}
              for i, (u, e, a, d) in enumerate([("liver", "Query", {}, 0.8), ("bigger", "ScaleBox", {}, 0.9),
                                                 ("accept", "Control", {"action": "accept"}, 0.9)])]
    (logs / "s1.jsonl").write_text("\n".join(json.dumps(e) for e in events) + "\n")
    answers = {f"sus_{i}": (4 if i % 2 else 2) for i in range(1, 11)}  # SUS (3*5 + 3*5) * 2.5 = 75
    answers.update({"participant": "P1", "session_id": "s1", "tlx_mental": 30, "tlx_physical": 10, "tlx_temporal": 20,
                    "tlx_performance": 20, "tlx_effort": 30, "tlx_frustration": 10})
    (logs / "P1_questionnaire.json").write_text(json.dumps(answers))
    assert main(["eval", "usability", str(logs), "--out", str(tmp_path / "report"), "--json"]) == 0
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert (tmp_path / "report" / "report.md").exists()
    assert summary["participants"][0]["sus"] == 75.0 and summary["participants"][0]["tlx_raw"] == 20.0
    assert summary["counts"]["tasks_accepted"] == 1 and summary["overall"]["dice_at_acceptance"]["mean"] == 0.9


def test_modality_override_is_applied_and_said(tmp_path: Path, capsys) -> None:
    """A CT without air (clipped to [-125, 275] HU) is guessed MR; --modality CT wins, and both are printed."""
    from limis.imaging import load_image
    from limis.imaging.readers import modality_line

    data = np.clip(np.random.default_rng(0).normal(40, 80, size=(16, 16, 3)), -125, 275).astype(np.int16)
    path = tmp_path / "clipped_ct.nii.gz"
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(path))
    guessed = load_image(path)
    assert guessed.modality == "MR" and "guessed" in modality_line(guessed)
    stated = load_image(path, modality="ct")
    assert stated.modality == "CT" and modality_line(stated) == "modality: CT (set by --modality; the reader found MR)"
    code = main(["segment", str(path), "liver", "-o", str(tmp_path / "x.nii.gz"), "--modality", "PET"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "unknown modality 'PET'" in err


def test_demo_without_gradio_says_how_to_install_it(monkeypatch, capsys) -> None:
    """The web stack is an extra: a CLI-only install gets one line naming it, not an ImportError."""
    import socket

    monkeypatch.setitem(sys.modules, "gradio", None)  # `import gradio` now fails as if it were not installed
    monkeypatch.delitem(sys.modules, "limis.demo.app", raising=False)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert main(["demo", "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install 'limis[demo]'" in err
