"""`limis train grounding-dino`: metrics, targets, loss, loop, resume, LoRA, CLI and two CPU processes.

Training tests run a tiny random Grounding DINO on slices of the shared CT; they check the
machinery (loss falls, resume is bit-exact, the model loads back for inference), not accuracy.
"""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("transformers")
pytest.importorskip("accelerate")
import torch
from tiny_models import one_torch_thread, save_tiny_grounding_dino  # noqa: F401 (autouse fixture)

from limis.eval.detection import average_precision, recall_at_iou
from limis.train.grounding_dino_data import normalised_cxcywh, process_positions, stream_sample

REPO = Path(__file__).resolve().parents[1]
MANIFEST = REPO / "evaluation" / "datasets" / "grounding_train.yaml"


# ---------------------------------------------------------------- metrics (pure)

TRUTHS = {"a": [(0.0, 0.0, 9.0, 9.0), (20.0, 20.0, 29.0, 29.0)], "b": [(0.0, 0.0, 9.0, 9.0)]}
DETECTIONS = [
    ("b", 0.6, (0.0, 0.0, 9.0, 10.0)),  # IoU 100/110 with b's box: hit
    ("a", 0.9, (0.0, 0.0, 9.0, 9.0)),  # hit
    ("a", 0.8, (0.0, 0.0, 9.0, 9.0)),  # duplicate of the same truth: miss
    ("b", 0.7, (50.0, 50.0, 59.0, 59.0)),  # nowhere: miss
]


def test_ap50_by_hand() -> None:
    # Ranked hits T F F T over 3 truths: precision 1, 1/2, 1/3, 1/2 at recall 1/3, 1/3, 1/3, 2/3.
    # Envelope 1, 1/2, 1/2, 1/2 -> AP = 1/3 * 1 + 1/3 * 1/2 = 1/2.
    assert average_precision(DETECTIONS, TRUTHS) == pytest.approx(0.5)
    # At IoU 0.95 the 100/110 overlap misses: only the first detection hits -> AP = 1/3.
    assert average_precision(DETECTIONS, TRUTHS, iou_threshold=0.95) == pytest.approx(1 / 3)
    assert average_precision([], TRUTHS) == 0.0
    assert math.isnan(average_precision(DETECTIONS, {}))


def test_recall50_by_hand() -> None:
    assert recall_at_iou(DETECTIONS, TRUTHS) == pytest.approx(2 / 3)
    assert recall_at_iou([d for d in DETECTIONS if d[1] >= 0.75], TRUTHS) == pytest.approx(1 / 3)
    assert math.isnan(recall_at_iou(DETECTIONS, {"a": []}))


# ---------------------------------------------------------------- targets, stream, loss (fast)


def test_normalised_box_uses_pixel_edges() -> None:
    # Pixels 0..9 of 20 columns span edges 0..10; rows 0..4 of 10 span edges 0..5.
    assert normalised_cxcywh((0.0, 0.0, 9.0, 4.0), (10, 20)) == pytest.approx((0.25, 0.25, 0.5, 0.5))
    assert normalised_cxcywh((0.0, 0.0, 19.0, 9.0), (10, 20)) == pytest.approx((0.5, 0.5, 1.0, 1.0))


def test_detector_box_inverts_the_training_target() -> None:
    from limis.detect.grounding_dino import _display_box

    box, shape = (3.0, 2.0, 12.0, 7.0), (10, 20)
    cx, cy, w, h = normalised_cxcywh(box, shape)
    edges = ((cx - w / 2) * 20, (cy - h / 2) * 10, (cx + w / 2) * 20, (cy + h / 2) * 10)
    assert _display_box(edges, shape) == pytest.approx(box)


def test_stream_is_a_function_of_seed_and_position() -> None:
    epoch = [stream_sample(7, position, 11) for position in range(11)]
    assert sorted(epoch) == list(range(11))
    assert epoch != [stream_sample(8, position, 11) for position in range(11)]
    assert [stream_sample(7, p, 11) for p in range(11, 22)] != epoch  # a new shuffle per epoch
    two = [p for rank in range(2) for p in process_positions(5, 2, rank, 2)]
    assert two == list(process_positions(5, 4, 0, 1)) == list(range(20, 24))


def test_batch_safe_loss_equals_per_image_losses() -> None:
    """Captions with 2, 1 and 3 phrases in one batch: every term equals the box-weighted per-image terms."""
    from limis.train.grounding_dino_loss import BatchSafeImageLoss

    torch.manual_seed(0)
    config = SimpleNamespace(class_cost=1.0, bbox_cost=5.0, giou_cost=2.0, focal_alpha=0.25)
    criterion = BatchSafeImageLoss(config)
    queries, tokens = 6, 12
    phrases = [[(1, 3), (4, 5)], [(1, 2)], [(1, 2), (3, 5), (6, 9)]]  # token spans per phrase
    label_maps = tuple(torch.stack([torch.arange(tokens).ge(a) & torch.arange(tokens).lt(b) for a, b in spans]).long()
                       for spans in phrases)
    logits = torch.randn(3, queries, tokens)
    boxes = torch.cat([torch.rand(3, queries, 2) * 0.5 + 0.25, torch.rand(3, queries, 2) * 0.3 + 0.1], dim=-1)
    targets = [
        {"class_labels": torch.tensor([1, 0]), "boxes": torch.tensor([[0.3, 0.3, 0.2, 0.2], [0.6, 0.5, 0.3, 0.2]])},
        {"class_labels": torch.tensor([0]), "boxes": torch.tensor([[0.5, 0.5, 0.4, 0.4]])},
        {"class_labels": torch.tensor([2, 1, 2]), "boxes": torch.rand(3, 2) * 0.4 + 0.3},
    ]
    targets[2]["boxes"] = torch.cat([targets[2]["boxes"], torch.full((3, 2), 0.2)], dim=1)
    text_mask = torch.ones(3, queries, tokens, dtype=torch.bool)

    def outputs(index: slice) -> dict:
        return {"logits": logits[index], "pred_boxes": boxes[index], "label_maps": label_maps[index],
                "text_mask": text_mask[index]}

    batch = criterion(outputs(slice(0, 3)), targets)
    singles = [criterion(outputs(slice(i, i + 1)), targets[i : i + 1]) for i in range(3)]
    counts = [len(t["class_labels"]) for t in targets]
    for name in ("loss_ce", "loss_bbox", "loss_giou"):
        weighted = sum(single[name] * count for single, count in zip(singles, counts)) / sum(counts)
        torch.testing.assert_close(batch[name], weighted)


# ---------------------------------------------------------------- tiny model on the shared CT


@pytest.fixture(scope="module")
def tiny_dino(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_grounding_dino(tmp_path_factory.mktemp("tiny_dino"))


@pytest.fixture(scope="module")
def train_samples(totalseg_dir: Path) -> list:
    from limis.eval.datasets import load_manifest
    from limis.train.samples import manifest_samples

    return list(manifest_samples(load_manifest(MANIFEST), "train"))


def test_caption_phrases_line_up_with_class_labels(train_samples: list, tiny_dino: Path) -> None:
    """The model's own phrase split of the tokenised caption puts each box's phrase at its class label."""
    from transformers import AutoProcessor
    from transformers.models.grounding_dino.modeling_grounding_dino import build_label_maps

    from limis.detect.grounding_dino import structure_label
    from limis.train.augment import AugmentConfig
    from limis.train.grounding_dino_data import CaptionBudget, collate, make_example

    processor = AutoProcessor.from_pretrained(tiny_dino)
    vocabulary = sorted({name for s in train_samples for name in s.names.values()})
    budget = CaptionBudget(processor.tokenizer, 256)
    rng = np.random.default_rng(0)
    examples = [make_example(s, rng, vocabulary, 4, budget, AugmentConfig()) for s in train_samples[40:43]]
    batch = collate(examples, processor, torch.device("cpu"))
    label_maps = build_label_maps(torch.zeros(3, 10, 256), batch["input_ids"])
    for example, ids, label_map, target in zip(examples, batch["input_ids"], label_maps, batch["labels"]):
        assert len(label_map) == len(example.labels) >= len(target["class_labels"]) > 0
        words = [processor.tokenizer.decode(ids[row.bool()[: len(ids)]]) for row in label_map]
        assert words == [structure_label(name) for name in example.labels]
        assert ((target["boxes"] > 0) & (target["boxes"] <= 1)).all()


def _config(tiny_dino: Path, **changes):
    from limis.train.grounding_dino import GroundingDinoTrainConfig

    base = GroundingDinoTrainConfig(manifest=str(MANIFEST), model=str(tiny_dino), steps=6, batch_size=2, lr=1e-3,
                                    max_train_slices=6, log_every=1, val_every=0, checkpoint_every=3)
    return replace(base, **changes)


def _losses(run: Path) -> list[tuple[str, str, str]]:
    with (run / "metrics.csv").open(newline="") as handle:
        return [(r["step"], r["loss"], r["lr"]) for r in csv.DictReader(handle) if r["loss"]]


def _weights(model_dir: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(model_dir / "model.safetensors")


@pytest.fixture(scope="module")
def overfit_run(totalseg_dir: Path, tiny_dino: Path,
                tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """30 steps on 4 unaugmented slices; (run folder, report lines)."""
    from limis.train.grounding_dino import train_grounding_dino

    out = tmp_path_factory.mktemp("overfit")
    lines: list[str] = []
    config = _config(tiny_dino, steps=30, augment=False, distractors=2, max_train_slices=4, val_every=100,
                     checkpoint_every=30)
    train_grounding_dino(config, out, report=lines.append)
    return out, lines


def test_loss_falls_when_overfitting(overfit_run: tuple[Path, list[str]]) -> None:
    run, lines = overfit_run
    losses = [float(loss) for _, loss, _ in _losses(run)]
    assert len(losses) == 30 and all(math.isfinite(x) for x in losses)
    first, last = np.mean(losses[:5]), np.mean(losses[-5:])
    assert last < 0.7 * first, (first, last)
    assert any("no 'val' split; validation skipped" in line for line in lines)


def test_trained_model_loads_as_detector(overfit_run: tuple[Path, list[str]], train_samples: list) -> None:
    from limis.detect.grounding_dino import GroundingDinoDetector
    from limis.train.grounding_dino_validate import as_slice_image

    detector = GroundingDinoDetector.from_pretrained(str(overfit_run[0] / "model"), box_threshold=0.0)
    image = as_slice_image(train_samples[50])
    found = detector.detect(image, ["liver", "kidney_left"])
    rows, cols = image.pixels.shape
    assert found and {d.structure for d in found} <= {"liver", "kidney_left"}
    assert all(0 <= d.box[0] <= d.box[2] <= cols - 1 and 0 <= d.box[1] <= d.box[3] <= rows - 1 for d in found)


def test_resume_is_bit_exact(totalseg_dir: Path, tiny_dino: Path, tmp_path: Path) -> None:
    """0 -> 6 in one go equals 0 -> 3 then --resume to 6: same logged losses, same final weights."""
    from limis.train.grounding_dino import train_grounding_dino

    config = _config(tiny_dino, log_every=2)  # the logging window at step 3 is open across the checkpoint
    whole, split = tmp_path / "whole", tmp_path / "split"
    train_grounding_dino(config, whole, report=lambda _: None)
    train_grounding_dino(replace(config, steps=3), split, report=lambda _: None)
    assert (split / "checkpoints" / "step_000003").is_dir()
    train_grounding_dino(config, split, resume=True, report=lambda _: None)

    assert _losses(whole) == _losses(split) and [s for s, _, _ in _losses(whole)] == ["2", "4", "6"]
    first, second = _weights(whole / "model"), _weights(split / "model")
    assert first.keys() == second.keys()
    assert all(torch.equal(first[name], second[name]) for name in first)


def test_lora_trains_adapters_and_merges(totalseg_dir: Path, tiny_dino: Path, tmp_path: Path) -> None:
    from limis.detect.grounding_dino import GroundingDinoDetector
    from limis.train.grounding_dino import train_grounding_dino

    train_grounding_dino(_config(tiny_dino, steps=3, lora_rank=4), tmp_path, report=lambda _: None)
    base, merged = _weights(tiny_dino), _weights(tmp_path / "model")
    assert base.keys() == merged.keys()  # merged: no adapter tensors left
    adapted = "model.decoder.layers.0.self_attn.query.weight"
    assert not torch.equal(base[adapted], merged[adapted])
    frozen = [k for k in base if k.startswith(("model.backbone.", "model.text_backbone.", "bbox_embed."))]
    assert frozen and all(torch.equal(base[k], merged[k]) for k in frozen)
    assert GroundingDinoDetector.from_pretrained(str(tmp_path / "model")).model.config.d_model == 32


def test_cli_end_to_end(totalseg_dir: Path, tiny_dino: Path, tmp_path: Path,
                        capsys: pytest.CaptureFixture[str]) -> None:
    from limis.cli import main

    out = tmp_path / "run"
    args = ["train", "grounding-dino", "--manifest", str(MANIFEST), "--model", str(tiny_dino), "--out", str(out),
            "--steps", "3", "--batch-size", "1", "--max-train-slices", "2", "--log-every", "1", "--val-every", "2",
            "--val-split", "test", "--max-val-slices", "2", "--checkpoint-every", "2"]
    assert main(args) == 0  # validates at step 2, then trains on (inference mode left nothing behind)
    for name in ("run.json", "metrics.csv", "curves.png", "validation.csv", "model/config.json",
                 "model/model.safetensors", "model/processor_config.json"):
        assert (out / name).is_file(), name
    assert json.loads((out / "run.json").read_text())["config"]["num_processes"] == 1
    with (out / "validation.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows and all(r["step"] == "2" and 0.0 <= float(r["ap50"]) <= 1.0 for r in rows)
    assert "val_ap50" in (out / "metrics.csv").read_text().splitlines()[0]
    capsys.readouterr()

    assert main(args) == 2  # the folder has checkpoints: starting over needs --resume
    assert "pass --resume" in capsys.readouterr().err
    assert main([*args[:7], str(tmp_path / "fresh"), *args[8:], "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err


def test_cli_uncached_hub_model_is_one_line(totalseg_dir: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    from limis.cli import main

    code = main(["train", "grounding-dino", "--manifest", str(MANIFEST), "--model", "limis-test/no-such-model",
                 "--out", str(tmp_path / "run"), "--steps", "1", "--max-train-slices", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "hf download limis-test/no-such-model" in err and "pass --model DIR" in err and "Traceback" not in err
    assert not (tmp_path / "run" / "run.json").exists()  # a failed start claims no run folder


@pytest.mark.slow
def test_two_cpu_processes_with_accelerate_launch(totalseg_dir: Path, tiny_dino: Path, tmp_path: Path) -> None:
    """`accelerate launch` starts two gloo processes; each trains its half of the batch and saves its own RNG state.

    `--cpu` makes accelerate start one process only, so the launch asks for two without it; the
    training code itself picks gloo on a machine without GPUs.
    """
    out = tmp_path / "run"
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "limis.cli",
               "train", "grounding-dino", "--manifest", str(MANIFEST), "--model", str(tiny_dino), "--out", str(out),
               "--steps", "2", "--batch-size", "1", "--max-train-slices", "4", "--log-every", "1",
               "--val-every", "0", "--checkpoint-every", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((out / "run.json").read_text())["config"]["num_processes"] == 2
    assert sorted(p.name for p in (out / "checkpoints" / "step_000002").glob("random_states_*")) == [
        "random_states_0.pkl", "random_states_1.pkl"]
    assert [s for s, _, _ in _losses(out)] == ["1", "2"]
    assert done.stdout.count("wrote ") == 1  # only the main process reports
    assert (out / "model" / "model.safetensors").is_file()
