"""Evaluation suite: manifests and patient-level splits, accuracy runner (resume), simulated users."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from limis.errors import LimisError
from limis.eval.accuracy import run_accuracy
from limis.eval.datasets import load_manifest
from limis.eval.interaction import run_interaction
from limis.eval.simulated_user import next_click, next_utterance
from limis.imaging import Plane, SliceGeometry
from limis.imaging.phantom import make_phantom

REPO = Path(__file__).resolve().parents[1]
TOTALSEG_MANIFEST = REPO / "evaluation" / "datasets" / "totalseg_example.yaml"
SAMMED2D_MANIFEST = REPO / "evaluation" / "datasets" / "sammed2d_demo.yaml"


def test_shared_manifest_declares_patients_and_splits(totalseg_dir: Path) -> None:
    manifest = load_manifest(TOTALSEG_MANIFEST)
    assert [c.case_id for c in manifest.split("test")] == ["example_ct", "example_ct_sm", "dicom_example_ct"]
    assert {c.patient for c in manifest.cases} == {"ts_example", "ts_dicom"}
    assert manifest.label_names[3] == "kidney_left"


def test_mixed_patient_split_is_refused(tmp_path: Path) -> None:
    (tmp_path / "map.json").write_text(json.dumps({"1": "liver"}))
    (tmp_path / "m.yaml").write_text(
        "format: nifti-folder\nlabel_map: {file: map.json}\ncases:\n"
        "  - {id: a, patient: p1, split: train, image: a.nii.gz, labels: a_seg.nii.gz}\n"
        "  - {id: b, patient: p1, split: test, image: b.nii.gz, labels: b_seg.nii.gz}\n")
    with pytest.raises(LimisError, match="patient 'p1' is in splits"):
        load_manifest(tmp_path / "m.yaml")
    with pytest.raises(LimisError, match="needs 'format'"):
        (tmp_path / "bad.yaml").write_text("name: x\n")
        load_manifest(tmp_path / "bad.yaml")


def test_png2d_manifest_reads_sam_med2d_layout(sammed2d_dir: Path) -> None:
    manifest = load_manifest(SAMMED2D_MANIFEST)
    cases = {c.case_id: c for c in manifest.cases}
    assert set(cases) == {"amos_0004_75", "amos_0006_90", "s0114_111", "s0619_32"}  # the MR slice has no masks
    assert cases["s0114_111"].view == "rotated180" and len(cases["s0619_32"].masks["hip_left"]) == 2
    assert "liver" in manifest.label_names.values()


def _nnunet_phantoms(root: Path, seeds=(0, 1, 2)) -> Path:
    """A tiny nnU-Net raw dataset made of phantoms (patients p0..p2; p2 in train)."""
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    for seed in seeds:
        paths = make_phantom(root / f"tmp{seed}", seed=seed)
        shutil.move(paths["image"], root / "imagesTr" / f"case{seed}_0000.nii.gz")
        shutil.move(paths["labels"], root / "labelsTr" / f"case{seed}.nii.gz")
    (root / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "spleen": 1, "kidney_right": 2,
                                                              "kidney_left": 3, "liver": 5}}))
    manifest = root / "manifest.yaml"
    manifest.write_text("name: phantoms\nformat: nnunet\nroot: .\nsplits:\n  test: [case0, case1]\n  train: [case2]\n")
    return manifest


def test_accuracy_runner_resumes_after_a_kill(tmp_path: Path, box_segmenter) -> None:
    manifest = load_manifest(_nnunet_phantoms(tmp_path / "data"))
    assert [c.case_id for c in manifest.split("test")] == ["case0", "case1"]
    out = tmp_path / "runs"

    def crash(case_id: str) -> None:
        raise KeyboardInterrupt(f"killed after {case_id}")

    with pytest.raises(KeyboardInterrupt):
        run_accuracy(manifest, "test", "oracle-box", ["kidney_left", "liver"], out, box_segmenter, after_case=crash)
    results = out / "oracle-box" / "results.csv"
    first_run = results.read_text()
    assert len(first_run.splitlines()) == 3  # header + case0's two structures: nothing lost
    with results.open("a") as handle:
        handle.write("oracle-box,case1,case1,kidney_left,0.5")  # a row cut off mid-write by the kill
    summary = run_accuracy(manifest, "test", "oracle-box", ["kidney_left", "liver"], out, box_segmenter)
    text = results.read_text()
    assert text.startswith(first_run)  # finished rows were kept, not recomputed
    rows = list(csv.DictReader(text.splitlines()))
    assert sorted((r["case"], r["structure"]) for r in rows) == [
        ("case0", "kidney_left"), ("case0", "liver"), ("case1", "kidney_left"), ("case1", "liver")]
    assert summary["liver"]["dice"]["n"] == 2
    assert (out / "oracle-box" / "summary.md").exists() and (out / "oracle-box" / "dice_boxplot.png").exists()
    record = json.loads((out / "oracle-box" / "run.json").read_text())
    assert record["config"]["mode"] == "oracle-box" and "torch" in record["versions"]
    with pytest.raises(LimisError, match="another config"):
        run_accuracy(manifest, "test", "oracle-box", ["spleen"], out, box_segmenter)


def test_results_written_with_other_columns_are_not_resumed(tmp_path: Path) -> None:
    """A results.csv from a version with other columns would be misaligned by appending: one clear error instead."""
    from limis.errors import LimisError
    from limis.eval.accuracy import FIELDS
    from limis.eval.results import ResultsFile

    path = tmp_path / "results.csv"
    old = [f for f in FIELDS if f != "also_seen"]
    path.write_text(",".join(old) + "\n" + ",".join("1" for _ in old) + "\n")
    with pytest.raises(LimisError, match="new --out folder"):
        ResultsFile(path, FIELDS)
    assert path.read_text().count("\n") == 2  # nothing lost
    assert ResultsFile(path, old).done() == {("1", "1")}


def test_language_user_speaks_in_patient_terms() -> None:
    geometry = SliceGeometry((100, 80, 1), np.eye(4), Plane.AXIAL, 0)  # RAS: screen right = patient's left
    truth = np.zeros((80, 100), dtype=bool)
    truth[30:50, 60:80] = True
    assert next_utterance(None, (20.0, 30.0, 40.0, 49.0), truth, geometry) == "move left 40 mm"
    assert next_utterance(None, (50.0, 20.0, 89.0, 59.0), truth, geometry).startswith("smaller by")
    mask = truth.copy()
    mask[30:40, 60:80] = False
    assert next_utterance(mask, (60.0, 30.0, 79.0, 49.0), truth, geometry) == "include the upper part"
    x, y, positive = next_click(mask, truth)
    assert positive and 30 <= y < 40 and 60 <= x < 80


@pytest.mark.slow
def test_accuracy_oracle_box_on_shared_ct(tmp_path: Path, litemedsam, embedding_cache_dir: Path) -> None:
    manifest = load_manifest(TOTALSEG_MANIFEST)
    subset = type(manifest)(manifest.name, manifest.format, manifest.modality, manifest.path, manifest.label_names,
                            tuple(c for c in manifest.cases if c.case_id == "example_ct"))
    structures = ["kidney_left", "kidney_right", "spleen", "liver"]
    summary = run_accuracy(subset, "test", "oracle-box", structures, tmp_path, litemedsam,
                           cache_dir=embedding_cache_dir)
    print({s: round(v["dice"]["mean"], 3) for s, v in summary.items()})
    for structure in structures:
        assert summary[structure]["dice"]["mean"] >= 0.85
    folder = tmp_path / "oracle-box"
    for name in ("results.csv", "summary.md", "dice_boxplot.png", "dice_vs_size.png", "run.json"):
        assert (folder / name).exists(), name
    assert len(json.loads((folder / "run.json").read_text())["weights_sha256"]["litemedsam"]) == 64


def _one_case(case_id: str):
    manifest = load_manifest(TOTALSEG_MANIFEST)
    return type(manifest)(manifest.name, manifest.format, manifest.modality, manifest.path, manifest.label_names,
                          tuple(c for c in manifest.cases if c.case_id == case_id))


@pytest.mark.slow
def test_interaction_in_3d_from_the_text_detector(tmp_path: Path, litemedsam, embedding_cache_dir: Path) -> None:
    """The shipped text detector starts every run; three users, K turns, metrics and plots on disk."""
    from limis.pipeline.models import ModelOptions

    models = ModelOptions(cache_dir=embedding_cache_dir)
    summary = run_interaction(_one_case("example_ct"), "test", ["kidney_left", "stomach"], tmp_path, litemedsam,
                              models.build_detector, turns=3, cache_dir=embedding_cache_dir)
    print(json.dumps({u: e["all"]["dice_per_turn"] for u, e in summary.items()}, indent=1))
    assert set(summary) == {"language", "clicks", "boxes"}
    starts = {user: entry["all"]["dice_per_turn"][0]["mean"] for user, entry in summary.items()}
    assert len(set(starts.values())) == 1  # one start (the text query's answer) for every user
    for entry in summary.values():
        block = entry["all"]
        assert len(block["dice_per_turn"]) == 4 and block["runs"] == 2
        assert 0 <= block["noi_85"]["mean"] <= 4 and 0.0 <= block["fail_90_at_k"] <= 1.0
        assert block["dice_per_turn"][-1]["mean"] >= block["dice_per_turn"][0]["mean"] - 0.01
    assert summary["language"]["kidney_left"]["dice_per_turn"][0]["mean"] >= 0.85
    for name in ("turns.csv", "summary.md", "summary.json", "dice_per_turn.png", "dice_per_turn_kidney_left.png"):
        assert (tmp_path / name).exists(), name


def test_the_session_under_test_gets_only_words_clicks_and_boxes(tmp_path: Path, box_segmenter, monkeypatch,
                                                                 totalseg_dir: Path, total_names) -> None:
    """No mask, box or Dice of the reference flows into the session: it is built without one, and every call
    into it is a string (words), a click (floats and a flag) or a box drawn by the box user."""
    from limis.detect.oracle import OracleDetector
    from limis.imaging.align import load_labelmap_on
    from limis.interact import session as session_module

    class Offset(OracleDetector):
        """A text detector stand-in: boxes 4 px off the reference, found by search (not told where)."""

        def candidate_slices(self, structure, plane_axis):
            return None

        def detect(self, image, structures):
            return [type(d)(d.structure, tuple(v + 4.0 for v in d.box), 0.9, d.phrase)
                    for d in super().detect(image, structures)]

    calls, sessions = [], []
    real_init = session_module.Session.__init__

    def spy(name):
        real = getattr(session_module.Session, name)

        def recorded(self, *args, **kwargs):
            calls.append((name, args, kwargs))
            return real(self, *args, **kwargs)

        return recorded

    def init(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        sessions.append(self)

    monkeypatch.setattr(session_module.Session, "__init__", init)
    for name in ("apply", "add_point", "set_box"):
        monkeypatch.setattr(session_module.Session, name, spy(name))
    summary = run_interaction(_one_case("example_ct_sm"), "test", ["kidney_left"], tmp_path, box_segmenter,
                              lambda volume, cache: Offset(load_labelmap_on(volume, totalseg_dir / "example_seg.nii.gz"),
                                                           total_names), turns=4)
    assert sessions and all(s.reference is None for s in sessions)
    kinds = {name for name, _, _ in calls}
    assert kinds == {"apply", "add_point", "set_box"}
    for name, args, kwargs in calls:
        values = [*args, *kwargs.values()]
        assert not any(isinstance(v, np.ndarray) for v in values), (name, args)
        if name == "apply":
            assert len(values) == 1 and isinstance(values[0], str)
        elif name == "add_point":
            assert all(isinstance(v, (float, bool, str)) for v in values)
        else:
            assert isinstance(values[0], str) and len(values[1]) == 4 and all(isinstance(v, float) for v in values[1])
    language = summary["language"]["all"]["dice_per_turn"]
    assert language[-1]["mean"] > language[0]["mean"]  # words fixed the 4-pixel offset


def test_interaction_metrics() -> None:
    from limis.eval.interaction import dice_auc, summarise, turns_to_reach

    assert turns_to_reach(np.array([0.5, 0.86, 0.95]), 0.85) == 1 and turns_to_reach(np.array([0.5, 0.6]), 0.85) == 2
    assert turns_to_reach(np.array([0.9, 0.9]), 0.85) == 0
    assert dice_auc(np.array([0.0, 1.0, 1.0])) == pytest.approx(0.75) and dice_auc(np.array([0.8])) == 0.8
    rows = [{"user": "language", "case": p, "patient": p, "structure": "liver", "turn": t, "action": "", "dice": d,
             "seconds": 0.1} for p, curve in (("a", [0.5, 0.9]), ("b", [0.7, 0.8])) for t, d in enumerate(curve)]
    block = summarise(rows, turns=1)["language"]["all"]
    assert block["noi_90"]["mean"] == pytest.approx(1.5) and block["fail_90_at_k"] == 0.5
    assert block["dice_per_turn"][1]["mean"] == pytest.approx(0.85) and block["patients"] == 2


@pytest.mark.parametrize("config", sorted((REPO / "evaluation" / "datasets" / "public").glob("*.yaml")),
                         ids=lambda p: p.stem)
def test_public_dataset_configs_are_declared_with_canonical_labels(config: Path) -> None:
    import yaml

    from limis import vocab
    from limis.eval.datasets import FORMATS

    spec = yaml.safe_load(config.read_text())
    assert spec["format"] in FORMATS and "${LIMIS_DATA}" in spec["root"]
    names = list((spec.get("labels") or {}).values()) + list(spec.get("structures") or [])
    if "label_set" in spec:
        names += list(vocab.label_set(spec["label_set"]).values())
    assert names, f"{config.name}: declare the label mapping (labels: or label_set:), not only in comments"
    for name in names:
        assert vocab.get_structure(name).name == name


def test_nnunet_v1_style_labels_are_made_canonical(tmp_path: Path) -> None:
    root = tmp_path / "amos"
    (root / "labelsTr").mkdir(parents=True)
    (root / "imagesTr").mkdir()
    (root / "labelsTr" / "amos_0001.nii.gz").write_bytes(b"")
    (root / "dataset.json").write_text(json.dumps({"labels": {"0": "background", "1": "spleen", "9": "postcava",
                                                              "2": "right kidney"}}))
    (tmp_path / "m.yaml").write_text("format: nnunet\nroot: amos\n")
    manifest = load_manifest(tmp_path / "m.yaml")
    assert manifest.label_names == {1: "spleen", 9: "inferior_vena_cava", 2: "kidney_right"}
    assert manifest.cases[0].image == root / "imagesTr" / "amos_0001.nii.gz"


def test_the_language_user_rounds_and_slips_like_a_person() -> None:
    """Amounts come out noisy and rounded; about one utterance in ten has a wrong direction word."""
    from limis.eval.robots import LanguageUser

    said = []

    class Ear:
        def say(self, words):
            said.append(words)

    user = LanguageUser("liver", np.zeros((2, 2, 2), dtype=bool), np.random.default_rng(0))
    for _ in range(400):
        user._say(Ear(), "move left 12 mm")
    amounts = [int(w.split()[2]) for w in said]
    assert len(set(amounts)) > 5 and 6 <= np.median(amounts) <= 18 and all(a >= 1 for a in amounts)
    slips = sum(w.startswith("move right") for w in said) / len(said)
    assert 0.05 <= slips <= 0.15
