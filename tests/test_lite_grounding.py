"""lite-grounding: targets, head file format, training, and the shipped head on the unseen DICOM scan."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from made_inputs import SeededEmbeddings

from limis.detect.lite_grounding import GroundingHead, HeadConfig, LiteGroundingModel, default_weights
from limis.errors import LimisError, WeightsNotFoundError
from limis.train.lite_grounding import head_loss
from limis.train.lite_grounding_data import DataSource, cell_occupancy, trainable_concepts

REPO = Path(__file__).resolve().parents[1]
MANIFEST = REPO / "evaluation" / "datasets" / "grounding_train.yaml"


def test_concepts_are_side_free_and_skip_numbered_bones() -> None:
    names = {1: "kidney_left", 2: "kidney_right", 3: "liver", 4: "rib_left_7", 5: "vertebrae_L1", 6: "not_in_vocab"}
    assert trainable_concepts(names) == {"kidney": [1, 2], "liver": [3]}


def test_occupancy_is_the_covered_fraction_of_each_cell() -> None:
    labels = np.zeros((256, 256), dtype=np.int16)  # a 256 x 256 slice maps 1:1 onto LiteMedSAM's input
    labels[:4, :2] = 3  # half of cell (0, 0) is liver
    labels[8:12, 8:12] = 1  # all of cell (2, 2) is kidney
    targets = cell_occupancy(labels, [[1, 2], [3]])
    assert targets.shape == (2, 64, 64)
    assert float(targets[1, 0, 0]) == 0.5 and float(targets[0, 2, 2]) == 1.0
    assert float(targets.sum()) == 1.5


def test_loss_prefers_the_right_cells() -> None:
    targets = torch.zeros(1, 1, 64, 64)
    targets[0, 0, 10:20, 10:20] = 1.0
    labelled = torch.ones(1, 1, dtype=torch.bool)
    right = torch.zeros(1, 2, 64, 64)
    right[0, 1] = torch.where(targets[0, 0] > 0, 8.0, -8.0)
    wrong = torch.zeros(1, 2, 64, 64)
    wrong[0, 1] = torch.where(targets[0, 0] > 0, -8.0, 8.0)
    assert head_loss(right, targets, labelled, 1.0)[0] < 0.05 < head_loss(wrong, targets, labelled, 1.0)[0]


def test_loss_does_not_punish_concepts_the_dataset_does_not_label() -> None:
    """A cell claimed by "colon" on a dataset without colon labels costs nothing; with colon labels it does."""
    targets = torch.zeros(1, 2, 64, 64)  # (liver, colon); no liver here, colon unknown or absent
    logits = torch.full((1, 3, 64, 64), -8.0)
    logits[:, 0] = 0.0
    logits[0, 2, :8, :8] = 8.0  # the head says colon in a corner
    unlabelled = head_loss(logits, targets, torch.tensor([[True, False]]), 0.0)[0]
    labelled = head_loss(logits, targets, torch.tensor([[True, True]]), 0.0)[0]
    assert unlabelled < 1e-3 < labelled


def test_data_sources_parse_manifest_and_splits() -> None:
    assert DataSource.parse("a/btcv.yaml:fold0,fold1") == DataSource("a/btcv.yaml", "fold0,fold1")
    assert DataSource.parse("a/btcv.yaml") == DataSource("a/btcv.yaml", "train")


def test_head_file_round_trip_and_clear_errors(tmp_path: Path) -> None:
    torch.manual_seed(0)
    head = GroundingHead(width=16)
    table = {"liver": torch.randn(384), "kidney": torch.randn(384)}
    config = HeadConfig(width=16, presence_thresholds={"kidney": 0.7})
    model = LiteGroundingModel(head, table, config, {"concepts": ["kidney", "liver"]})
    path = model.save(tmp_path / "head.safetensors")
    loaded = LiteGroundingModel.load(path)
    for key, value in head.state_dict().items():
        assert torch.equal(value, loaded.head.state_dict()[key])
    assert torch.equal(loaded.text(["kidney"])[0], table["kidney"]) and loaded.metadata["concepts"] == ["kidney", "liver"]
    assert loaded.config.presence("kidney") == 0.7 and loaded.config.presence("liver") == config.presence_threshold
    with pytest.raises(WeightsNotFoundError, match="limis train lite-grounding"):
        LiteGroundingModel.load(tmp_path / "missing.safetensors")
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not a safetensors file")
    with pytest.raises(LimisError, match="not a lite-grounding head"):
        LiteGroundingModel.load(broken)


def test_shipped_head_is_small_and_documented() -> None:

    path = default_weights()
    assert path.is_file() and path.stat().st_size < 20 * 1024 * 1024
    card = json.loads(path.with_suffix(".json").read_text())
    cases = card["training_cases"]
    assert "dicom_example_ct" not in cases, "the unseen test scan must never be in training"
    assert sum(c.startswith("btcv_") for c in cases) == 24 and sum(c.startswith("chaos_") for c in cases) == 15
    assert "kidney" in card["concepts_trained_present"] and "brain" in card["concepts_negative_only"]
    assert card["encoder_sha256"] and card["head_config"]["presence_thresholds"]


@pytest.fixture(scope="module")
def dicom_case(totalseg_dir: Path):
    from limis.eval.cases import load_case
    from limis.eval.datasets import load_manifest

    manifest = load_manifest(MANIFEST)
    return load_case(manifest.split("test")[0], manifest)


@pytest.fixture(scope="module")
def unseen_slices(dicom_case, litemedsam):
    """The shipped detector and three axial slices of the scan it never saw in training."""
    from limis.detect.lite_grounding import LiteGroundingDetector
    from limis.imaging.display import Plane
    from limis.pipeline.slices import choose_window, slice_image
    from limis.segment.cache import EmbeddingCache

    volume = dicom_case[0]
    window = choose_window(volume)
    detector = LiteGroundingDetector(LiteGroundingModel.load(), EmbeddingCache(litemedsam))
    return detector, [slice_image(volume, Plane.AXIAL, i, window) for i in (4, 10, 16)]


@pytest.mark.slow
def test_shipped_head_finds_organs_on_the_unseen_scan(dicom_case, unseen_slices) -> None:
    """Trained without dicom_example_ct: liver, spleen and aorta boxes overlap the reference; no brain is claimed."""
    from limis.eval.detection import box_iou
    from limis.imaging.display import Plane, display_slice
    from limis.imaging.slice_image import box_from_mask
    from limis.pipeline.grounded import detect_structure

    _, labels, names = dicom_case
    detector, images = unseen_slices
    ids = {name: i for i, name in names.items()}
    for structure in ("liver", "spleen", "aorta"):
        for image, found in zip(images, detect_structure(detector, images, structure)):
            truth = box_from_mask(display_slice(labels, Plane.AXIAL, image.geometry.index) == ids[structure])
            # the liver's heatmap may split into two lobes (two boxes): together they must cover it
            union = (min(d.box[0] for d in found), min(d.box[1] for d in found),
                     max(d.box[2] for d in found), max(d.box[3] for d in found)) if found else None
            assert found and box_iou(union, truth) > 0.4, (structure, image.geometry.index)
    assert not any(detect_structure(detector, images, "brain"))


@pytest.mark.slow
def test_support_map_covers_the_organ_and_widens_the_heatmap_by_a_cell(dicom_case, unseen_slices) -> None:
    """The map the pipeline cuts masks to: on the unseen scan it covers the reference liver and spleen above the
    pipeline's cut, is the heatmap widened (never below it, higher beside the organ's edge), and says 'not here'
    for an absent concept."""
    from limis.detect.lite_grounding import heat_on_display
    from limis.imaging.display import Plane, display_slice
    from limis.pipeline.grounded import SegmentOptions

    _, labels, names = dicom_case
    detector, images = unseen_slices
    ids = {name: i for i, name in names.items()}
    cut = SegmentOptions().min_support
    for structure in ("liver", "spleen"):
        maps = detector.support(images, structure)
        raw = detector.grid_probabilities(images, [structure])
        for image, support, grid in zip(images, maps, raw):
            assert support.shape == image.pixels.shape
            truth = display_slice(labels, Plane.AXIAL, image.geometry.index) == ids[structure]
            assert np.mean(support[truth] >= cut) > 0.9, (structure, image.geometry.index)
            heat = heat_on_display(grid, image.pixels.shape)[0].numpy()
            assert np.all(support >= heat - 1e-6) and np.mean(support > heat + 0.05) > 0.005
    assert all(support.max() < cut for support in detector.support(images, "brain"))


@pytest.mark.slow
def test_shipped_head_answers_left_kidney_not_present(unseen_slices) -> None:
    """The scan ends above the kidneys: neither side may be claimed (the one-patient head claimed the left)."""
    from limis.pipeline.grounded import detect_structure

    detector, images = unseen_slices
    assert not any(detect_structure(detector, images, "kidney_left"))
    assert not any(detect_structure(detector, images, "kidney_right"))


@pytest.mark.slow
def test_segment_unseen_dicom_without_hub_weights(totalseg_dir: Path, dicom_case, tmp_path: Path, capsys) -> None:
    """`limis segment DICOM liver spleen brain`: two organs written, brain reported absent, exit 0."""

    import nibabel as nib

    from limis.cli import main
    from limis.eval.metrics import dice
    from limis.imaging import load_image
    from limis.imaging.align import load_labelmap_on

    out = tmp_path / "out.nii.gz"
    code = main(["segment", str(totalseg_dir / "dicom_example_ct"), "liver", "spleen", "brain", "-o", str(out), "--json"])
    assert code == 0
    rows = {row["structure"]: row for row in json.loads(capsys.readouterr().out)["structures"]}
    assert rows["brain"]["found"] is False and rows["liver"]["found"] and rows["spleen"]["found"]
    table = json.loads(out.with_suffix("").with_suffix(".json").read_text())
    assert {row["name"] for row in table["labels"]} == {"liver", "spleen"}
    volume, labels, names = dicom_case
    predicted = load_labelmap_on(load_image(totalseg_dir / "dicom_example_ct"), out)
    ids = {name: i for i, name in names.items()}
    by_name = {row["name"]: row["id"] for row in table["labels"]}
    # On slices 0-6 the heatmap splits the liver into its lobes; one box spans both (it was 0.80 with one lobe).
    assert dice(predicted == by_name["liver"], labels == ids["liver"]) > 0.9
    assert dice(predicted == by_name["spleen"], labels == ids["spleen"]) > 0.9
    assert nib.load(str(out)).shape == (512, 512, 20)
    _check_run_report(tmp_path / "out.report.json", ["out.nii.gz", "out.json", "out.seg.dcm", "out.report.json"])


def _check_run_report(path: Path, outputs: list[str]) -> None:
    """The report names the shipped weights by their real SHA-256 and carries no input file name."""
    from limis.detect.lite_grounding import default_weights
    from limis.segment.builders import litemedsam_checkpoint
    from limis.weights import sha256_of

    record = json.loads(path.read_text())
    assert record["schema"] == "limis-report/1" and record["outputs"] == outputs
    assert record["models"]["segmenter"]["sha256"] == sha256_of(litemedsam_checkpoint())
    assert record["models"]["detector"]["sha256"] == sha256_of(default_weights())
    assert record["models"]["detector"]["name"] == "lite-grounding" and record["input"]["source_orientation"] == "LPS"
    assert set(record["timings_s"]) == {"read_s", "load_models_s", "segment_s"}
    assert "dicom_example_ct" not in path.read_text()


@pytest.mark.slow
def test_train_lite_grounding_cli_learns_and_loads(totalseg_dir: Path, tmp_path: Path, litemedsam) -> None:
    from limis.cli import main
    from limis.detect.lite_grounding import LiteGroundingDetector

    out = tmp_path / "run"  # embeddings from the suite's one cache (LIMIS_EMBEDDING_CACHE): the 3D tests encode these slices
    code = main(["train", "lite-grounding", "--data", f"{MANIFEST}:train", "--out", str(out),
                 "--slice-step", "16", "--steps", "80", "--batch-size", "4", "--precision", "fp32", "--context-slices", "1"])
    assert code == 0
    assert json.loads((out / "run.json").read_text())["config"]["precision"] == "fp32"
    with (out / "metrics.csv").open() as handle:
        losses = [float(row["loss"]) for row in csv.DictReader(handle)]
    assert losses[-1] < 0.7 * losses[0]
    assert (out / "curves.png").is_file() and (out / "run.json").is_file()
    from limis.segment.cache import EmbeddingCache

    model = LiteGroundingModel.load(out / "lite_grounding.safetensors")
    assert model.config.context_slices == 1 and model.head.reduce[0].in_channels == 3 * 256 + 5
    detector = LiteGroundingDetector(model, EmbeddingCache(litemedsam))
    assert model.metadata["training_cases"] == ["example_ct"] and "liver" in model.concepts
    assert model.text(["liver", "kidney"]).shape == (2, 384)
    assert len(detector.detect_batch([], ["liver"])) == 0


def test_presence_thresholds_follow_held_out_false_positives() -> None:
    from limis.train.presence import presence_thresholds, threshold_report

    rng = np.random.default_rng(0)
    n = 400
    truth = np.zeros((n, 4), dtype=np.float32)
    truth[:100, 0] = 1.0  # liver present on 100 slices
    peak = rng.uniform(0.0, 0.4, size=(n, 4)).astype(np.float32)
    peak[:100, 0] = 0.95
    peak[100:110, 1] = 0.8  # kidney: confident false positives on 10 slices, all in one of 10 volumes
    peak[[5, 45, 85, 125, 165, 205, 245, 285, 325, 365], 3] = 0.6  # bladder: one slice in every volume
    labelled = np.ones((n, 4), dtype=bool)
    labelled[:, 2] = False  # a concept this dataset does not label: no evidence, no threshold
    scores = {"concepts": np.array(["liver", "kidney", "colon", "urinary_bladder"]), "peak": peak, "truth": truth,
              "labelled": labelled, "case": np.repeat([f"case_{i}" for i in range(10)], 40)}
    chosen = presence_thresholds(scores, default=0.5, fp_rate=0.01)
    assert 0.35 <= chosen["liver"] <= 0.95  # F2-optimal: at the absent-slice peaks (< 0.4), below every present one
    assert "colon" not in chosen
    # judged per volume: 1 slice in 40 (2.5 %) is a false claim in every volume, so the threshold clears them all
    assert chosen["kidney"] == pytest.approx(0.81, abs=1e-3) and chosen["urinary_bladder"] == pytest.approx(0.61, abs=1e-3)
    rows = {row[0]: row for row in threshold_report(scores, chosen, 0.5)}
    assert rows["liver"][7] == "1.000" and rows["kidney"][4] == 10 and rows["kidney"][5] == "0.000"
    assert threshold_report(scores, {"kidney": 0.7}, 0.5)[1][5] == "0.100"  # the one volume it claims



def test_validated_concepts_are_those_seen_present_per_modality() -> None:
    """A concept is reported on a modality only with >= 20 held-out present slices of it: liver on CT and MR, kidney
    on CT only (4 MR slices), bladder nowhere (never present), colon nowhere (never labelled)."""
    from limis.train.presence import validated_concepts

    n = 200
    modality = np.array(["CT"] * 120 + ["MR"] * 80)
    truth = np.zeros((n, 4), dtype=np.float32)
    truth[:40, 0] = truth[120:150, 0] = 1.0  # liver
    truth[40:70, 1] = 1.0  # kidney on CT
    truth[150:154, 1] = 1.0  # ... and on 4 MR slices
    truth[70:80, 1] = 0.3  # slivers do not count
    labelled = np.ones((n, 4), dtype=bool)
    labelled[:, 3] = False
    scores = {"concepts": np.array(["liver", "kidney", "urinary_bladder", "colon"]), "truth": truth,
              "labelled": labelled, "modality": modality, "peak": np.zeros((n, 4)), "case": np.zeros(n)}
    assert validated_concepts(scores) == {"CT": ["liver", "kidney"], "MR": ["liver"]}


def test_absent_claims_count_held_out_volumes_without_the_concept_that_it_was_found_in() -> None:
    """Per modality: of the volumes labelled for a concept and wholly without it, those whose peak reaches the
    threshold; a volume that has the concept on any slice is not asked, and a concept never claimed is left out."""
    from limis.train.presence import absent_claims

    case = np.repeat(np.array(["ct_a", "ct_b", "ct_c", "mr_a"]), 10)
    modality = np.where(np.char.startswith(case, "ct"), "CT", "MR")
    peak = np.zeros((40, 2), dtype=np.float32)
    truth = np.zeros((40, 2), dtype=np.float32)
    truth[0:4, 0] = 1.0  # ct_a has a gallbladder ...
    peak[0:4, 0] = 0.9
    peak[15, 0] = 0.8  # ... ct_b has none but a slice peaks above the threshold
    peak[25, 0] = 0.2  # ct_c: below it
    peak[35, 0] = 0.9  # mr_a: not labelled for the gallbladder
    labelled = np.ones((40, 2), dtype=bool)
    labelled[30:, 0] = False
    scores = {"concepts": np.array(["gallbladder", "liver"]), "peak": peak, "truth": truth, "labelled": labelled,
              "modality": modality, "case": case}
    assert absent_claims(scores, {"gallbladder": 0.5}, 0.5) == {"CT": {"gallbladder": [1, 2]}}
    assert absent_claims(scores, {"gallbladder": 0.85}, 0.5) == {}


def test_a_concept_claimed_on_absent_volumes_comes_with_a_caveat_on_that_modality_only() -> None:
    from dataclasses import replace

    from limis.detect.lite_grounding import LiteGroundingDetector

    shipped = LiteGroundingModel.load(default_weights())
    config = replace(shipped.config, validated={"CT": ["gallbladder", "liver"], "MR": ["liver"]},
                     absent_claims={"CT": {"gallbladder": [2, 2]}, "MR": {"gallbladder": [1, 3]}})
    detector = LiteGroundingDetector(LiteGroundingModel(shipped.head, shipped.text_table, config, shipped.metadata),
                                     SeededEmbeddings())
    assert "2 of 2" in detector.caveat("gallbladder", "CT")
    assert detector.caveat("liver", "CT") is None
    assert detector.caveat("gallbladder", "MR") is None  # declined there: the refusal speaks, not a caveat


def test_detector_reports_only_concepts_validated_on_the_image_modality(tmp_path: Path, box_segmenter) -> None:
    """A head validated for liver on CT: its CT answers are the ungated head's, on MR it reports nothing and says why,
    and the pipeline then neither encodes a slice nor calls it absent without the reason."""
    from dataclasses import replace

    from limis.detect.lite_grounding import LiteGroundingDetector
    from limis.imaging import load_image
    from limis.imaging.phantom import make_phantom
    from limis.pipeline.grounded import GroundedPipeline
    from limis.segment.cache import EmbeddingCache

    shipped = LiteGroundingModel.load(default_weights())
    eager = replace(shipped.config, presence_threshold=0.01, presence_thresholds={}, region_threshold=0.005,
                    min_region_mm2=1.0)  # random embeddings: low probabilities, still regions
    ungated = LiteGroundingModel(shipped.head, shipped.text_table, replace(eager, validated={}), shipped.metadata)
    gated = LiteGroundingModel(shipped.head, shipped.text_table, replace(eager, validated={"CT": ["liver"]}),
                               shipped.metadata)
    ct = phantom_slices(tmp_path)
    mr = [replace(image, modality="MR") for image in ct]
    everywhere, liver_ct = LiteGroundingDetector(ungated, SeededEmbeddings()), LiteGroundingDetector(gated, SeededEmbeddings())
    assert any(everywhere.detect_batch(mr, ["liver"])) and any(everywhere.detect_batch(ct, ["kidney_left"]))
    assert liver_ct.detect_batch(ct, ["liver"]) == everywhere.detect_batch(ct, ["liver"])
    assert not any(liver_ct.detect_batch(mr, ["liver"])) and not any(liver_ct.detect_batch(ct, ["kidney_left"]))
    assert liver_ct.refusal("liver", "CT") is None and everywhere.refusal("liver", "MR") is None
    assert "MR" in liver_ct.refusal("liver", "MR") and "liver" in liver_ct.refusal("kidney_left", "CT")

    volume = load_image(make_phantom(tmp_path / "mr")["image"])
    embeddings, cache = SeededEmbeddings(), EmbeddingCache(box_segmenter)
    result = GroundedPipeline(LiteGroundingDetector(gated, embeddings), cache).segment(
        replace(volume, modality="MR"), ["liver"])
    assert not result.results[0].found and "not validated on MR" in result.results[0].refusal
    assert embeddings.asked == [] and cache.misses == 0

def phantom_slices(folder: Path) -> list:
    """Ten abdomen-windowed axial slices of the synthetic phantom."""
    from limis.imaging import load_image
    from limis.imaging.display import CT_WINDOWS, Plane
    from limis.imaging.phantom import make_phantom
    from limis.pipeline.slices import slice_image

    volume = load_image(make_phantom(folder)["image"])
    return [slice_image(volume, Plane.AXIAL, i, CT_WINDOWS["abdomen"]) for i in range(0, 28, 3)]


def test_head_passes_a_few_slices_at_a_time_with_the_answer_of_one_pass(tmp_path: Path) -> None:
    """Ten slices go through the head HEAD_SLICES at a time (memory) and get the probabilities of one batched pass
    (each slice's embedding followed by those of the neighbours the head reads)."""
    from limis.detect.lite_grounding import (
        HEAD_SLICES,
        LiteGroundingDetector,
        context_offsets,
        coordinate_channels,
        slice_pixel_mm,
    )

    model = LiteGroundingModel.load(default_weights())
    images = phantom_slices(tmp_path)
    embeddings = SeededEmbeddings()
    chunked = LiteGroundingDetector(model, embeddings).grid_probabilities(images, ["liver", "kidney"])
    offsets = context_offsets(model.config.context_slices)
    assert len(images) > HEAD_SLICES and max(embeddings.asked) == len(offsets) * HEAD_SLICES
    assert sum(embeddings.asked) == len(offsets) * len(images)
    with torch.inference_mode():
        features = torch.cat([torch.cat([e.features for e in SeededEmbeddings().get_many([im.neighbour(o) for o in offsets])],
                                        dim=1) for im in images])
        coords = torch.stack([coordinate_channels(im.pixels, slice_pixel_mm(im)) for im in images])
        one_pass = torch.softmax(model.head(features, coords, model.text(list(model.concepts))), dim=1)[:, 1:]
    rows = [list(model.concepts).index(c) for c in ("liver", "kidney")]
    assert torch.allclose(chunked, one_pass[:, rows].to(torch.float16).float(), atol=1e-3)


def test_sessions_share_the_model_not_state_and_detect_concurrently(tmp_path: Path) -> None:
    """Eight sessions, each its own detector over its own cache, one shared head: answers under concurrency equal
    the serial ones, and no session's remembered probabilities reach another (the demo's sharing rule)."""
    from concurrent.futures import ThreadPoolExecutor

    from limis.detect.lite_grounding import LiteGroundingDetector

    model = LiteGroundingModel.load(default_weights())
    images = phantom_slices(tmp_path)
    serial = [LiteGroundingDetector(model, SeededEmbeddings()).grid_probabilities(images, ["liver", "kidney"])]
    detectors = [LiteGroundingDetector(model, SeededEmbeddings()) for _ in range(8)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda d: d.grid_probabilities(images, ["liver", "kidney"]), detectors))
    assert all(torch.equal(answer, serial[0]) for answer in answers)
    assert len({id(d._probabilities) for d in detectors}) == 8 and model.head.training is False


def test_balanced_sampling_draws_rare_concepts_more_often_within_a_cap() -> None:
    from limis.train.lite_grounding import MAX_SLICE_WEIGHT, sampling_weights

    targets = torch.zeros(100, 3, 64, 64)
    targets[:80, 0, :8, :8] = 1.0  # common concept on 80 slices
    targets[80:85, 1, :8, :8] = 1.0  # rare concept on 5 slices (16x rarer)
    targets[85:90, 2, :8, :8] = 1.0  # unlabelled concept: no evidence, no weight
    labelled = torch.ones(100, 3, dtype=torch.bool)
    labelled[:, 2] = False
    chance = sampling_weights(targets, labelled, balance=0.5)
    assert chance.sum() == pytest.approx(1.0)
    assert chance[80] / chance[0] == pytest.approx(MAX_SLICE_WEIGHT)  # sqrt(16) = 4, at the cap
    assert chance[85] == pytest.approx(chance[0]) and chance[95] == pytest.approx(chance[0])
    milder = sampling_weights(targets, labelled, balance=0.25)
    assert milder[80] / milder[0] == pytest.approx(2.0)


def test_precision_reaches_the_training_step() -> None:
    """fp32 and bf16 steps train different heads; the same precision and seed train the same head."""
    from limis.train.lite_grounding import LiteGroundingTrainConfig, train_head
    from limis.train.lite_grounding_data import SliceRecord, TrainingSlices

    generator = torch.Generator().manual_seed(0)
    targets = torch.zeros(4, 2, 64, 64, dtype=torch.float16)
    targets[:, 0, 20:40, 20:40] = 1.0
    data = TrainingSlices(torch.randn(4, 256, 64, 64, generator=generator).half(), torch.randn(4, 5, 64, 64, generator=generator),
                          targets, torch.ones(4, 2, dtype=torch.bool), ["liver", "spleen"],
                          [SliceRecord("case", i, "CT", "train") for i in range(4)])

    def trained(precision: str) -> torch.Tensor:
        config = LiteGroundingTrainConfig(data=(), steps=2, batch_size=1, width=8, zoom=0.0, precision=precision)
        return torch.cat([p.detach().flatten() for p in train_head(data, config, None, say=lambda line: None).parameters()])

    fp32 = trained("fp32")
    assert torch.equal(fp32, trained("fp32")) and not torch.equal(fp32, trained("bf16"))


@pytest.mark.parametrize("option, said", [(["--precision", "fp16"], "fp16"), (["--context-slices", "-1"], "-1"),
                                          (["--context-slices", "0", "--context-slices", "-2"], "-2")])
def test_a_wrong_recipe_is_one_line_before_any_loading(tmp_path: Path, capsys, option: list[str], said: str) -> None:
    from made_inputs import one_error_line

    from limis.cli import main

    code = main(["train", "lite-grounding", "--data", f"{MANIFEST}:train", "--out", str(tmp_path / "run"), *option])
    assert code == 2 and said in one_error_line(capsys)
    assert not (tmp_path / "run").exists()
