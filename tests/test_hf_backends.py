"""Tier 2: transformers backends (Grounding DINO detector, HF SAM segmenter) on tiny random models.

Each model is built from a tiny config, saved with `save_pretrained` into a temporary folder and
reloaded through the backend's own `from_pretrained`, so the offline loading path is what is tested.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("transformers")
import torch
from tiny_models import one_torch_thread, save_tiny_grounding_dino  # noqa: F401 (autouse fixture)

from limis.detect.base import Detection, Detector
from limis.detect.grounding_dino import GroundingDinoDetector, label_prompt, structure_label
from limis.errors import LimisError, WeightsNotFoundError
from limis.imaging.display import Plane, SliceGeometry, Window
from limis.imaging.slice_image import SliceImage
from limis.segment.base import Prompt, Segmenter
from limis.segment.hf_sam import HFSamSegmenter

STRUCTURES = ["kidney_left", "liver", "spleen"]
SAM_SIDE = 64  # tiny SAM input side; patch 8 -> 8x8 embedding -> 32x32 low-res masks


def _slice(rows: int = 64, cols: int = 80, seed: int = 0) -> SliceImage:
    """A synthetic windowed slice: noise plus a bright ellipse, float32 (rows, cols) in [0, 1]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:rows, :cols]
    blob = ((yy - rows * 0.4) / (rows * 0.2)) ** 2 + ((xx - cols * 0.6) / (cols * 0.15)) ** 2 < 1
    pixels = np.clip(0.2 * rng.random((rows, cols)) + 0.7 * blob, 0, 1).astype(np.float32)
    geometry = SliceGeometry(shape=(cols, rows, 1), affine=np.eye(4), plane=Plane.AXIAL, index=0)
    return SliceImage(pixels=pixels, geometry=geometry, window=Window("abdomen", 400, 40), key=("synthetic", seed),
                      modality="CT")


@pytest.fixture(scope="module")
def dino_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved tiny Grounding DINO (Swin embed 8, d_model 32, BERT hidden 32) with its processor."""
    return save_tiny_grounding_dino(tmp_path_factory.mktemp("grounding_dino"))


@pytest.fixture(scope="module")
def detector(dino_dir: Path) -> GroundingDinoDetector:
    return GroundingDinoDetector.from_pretrained(str(dino_dir), box_threshold=0.0)


@pytest.fixture(scope="module")
def sam_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved tiny SamModel (64 px input, hidden 32) with a SamImageProcessor sized to match."""
    from transformers import (
        SamConfig,
        SamImageProcessor,
        SamMaskDecoderConfig,
        SamModel,
        SamPromptEncoderConfig,
        SamVisionConfig,
    )

    torch.manual_seed(0)
    vision = SamVisionConfig(
        hidden_size=32, output_channels=16, num_hidden_layers=2, num_attention_heads=2, image_size=SAM_SIDE,
        patch_size=8, window_size=4, global_attn_indexes=[1], num_pos_feats=8, mlp_dim=32,
    )
    prompt = SamPromptEncoderConfig(hidden_size=16, image_size=SAM_SIDE, patch_size=8, mask_input_channels=4)
    decoder = SamMaskDecoderConfig(
        hidden_size=16, mlp_dim=32, num_hidden_layers=2, num_attention_heads=2, iou_head_hidden_dim=16
    )
    config = SamConfig(vision_config=vision, prompt_encoder_config=prompt, mask_decoder_config=decoder)
    folder = tmp_path_factory.mktemp("sam")
    SamModel(config).save_pretrained(folder)
    pad = {"height": SAM_SIDE, "width": SAM_SIDE}
    SamImageProcessor(size={"longest_edge": SAM_SIDE}, pad_size=pad).save_pretrained(folder)
    return folder


@pytest.fixture
def empty_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Offline, with an empty HF home and cache, so no hub id can resolve."""
    import huggingface_hub.constants as hub_constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    # huggingface_hub reads its cache path at import time; point the live value at the empty folder too.
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hf_home" / "hub"))
    monkeypatch.chdir(tmp_path)  # so the hub id can never be taken for a local folder


# ---------------------------------------------------------------- Grounding DINO


def test_label_prompt_format() -> None:
    labels = [structure_label(s) for s in ("kidney_left", "liver")]
    assert all(label == label.lower() and "." not in label for label in labels)
    assert label_prompt(["kidney left", "liver"]) == "kidney left . liver ."


def test_detect_end_to_end(detector: GroundingDinoDetector) -> None:
    assert isinstance(detector, Detector) and detector.name == "grounding-dino"
    image = _slice()
    detections = detector.detect(image, STRUCTURES)
    assert detections, "box_threshold=0 keeps every query"
    rows, cols = image.pixels.shape
    for d in detections:
        assert isinstance(d, Detection) and d.structure in STRUCTURES
        assert d.phrase == structure_label(d.structure)
        x1, y1, x2, y2 = d.box
        assert 0 <= x1 <= x2 <= cols - 1 and 0 <= y1 <= y2 <= rows - 1
        assert 0.0 <= d.score <= 1.0
    scores = [d.score for d in detections]
    assert scores == sorted(scores, reverse=True)


def test_detect_batch_matches_single(detector: GroundingDinoDetector) -> None:
    images = [_slice(seed=s) for s in range(3)]
    batched = detector.detect_batch(images, STRUCTURES)
    assert len(batched) == 3
    for image, found in zip(images, batched, strict=True):
        single = detector.detect(image, STRUCTURES)
        assert [d.structure for d in found] == [d.structure for d in single]
        np.testing.assert_allclose([d.box for d in found], [d.box for d in single], atol=1e-3)
        np.testing.assert_allclose([d.score for d in found], [d.score for d in single], atol=1e-4)


def test_detect_batch_mixed_sizes(detector: GroundingDinoDetector) -> None:
    """Slices of different shapes share a padded batch; each box stays on its own slice."""
    images = [_slice(), _slice(40, 48, seed=1)]
    for image, found in zip(images, detector.detect_batch(images, ["liver"]), strict=True):
        rows, cols = image.pixels.shape
        assert found and all(d.structure == "liver" for d in found)
        assert all(0 <= d.box[0] <= d.box[2] <= cols - 1 and 0 <= d.box[1] <= d.box[3] <= rows - 1 for d in found)


def test_detect_without_structures_runs_nothing(detector: GroundingDinoDetector) -> None:
    assert detector.detect_batch([_slice(), _slice(seed=1)], []) == [[], []]


def test_match_prefers_exact_then_shared_words(detector: GroundingDinoDetector) -> None:
    labels = ["kidney left", "kidney right", "liver"]
    assert detector._match("kidney right", labels, [0.9, 0.1, 0.0]) == 1
    assert detector._match("liver [SEP]", labels, [0.9, 0.1, 0.0]) == 2
    assert detector._match("kidney", labels, [0.2, 0.7, 0.0]) == 1  # tie on shared words: token scores decide
    assert detector._match("kidney left. liver. [SEP]", labels, [0.2, 0.1, 0.6]) == 2  # spans two labels
    assert detector._match("", labels, [0.1, 0.2, 0.6]) == 2


def test_grounding_dino_missing_weights_offline(empty_hub: None) -> None:
    with pytest.raises(WeightsNotFoundError) as info:
        GroundingDinoDetector.from_pretrained("IDEA-Research/grounding-dino-tiny")
    message = str(info.value)
    assert "\n" not in message and "hf download IDEA-Research/grounding-dino-tiny" in message
    assert "pass --detector-weights DIR" in message


# ---------------------------------------------------------------- HF SAM


@pytest.fixture(scope="module")
def sam(sam_dir: Path) -> HFSamSegmenter:
    return HFSamSegmenter.from_pretrained(str(sam_dir))


def _check(result, shape: tuple[int, int], count: int) -> None:
    assert result.mask.shape == shape and result.mask.dtype == bool
    assert len(result.candidates) == count
    scores = [score for _, score in result.candidates]
    assert scores == sorted(scores, reverse=True) and result.score == scores[0]
    assert all(mask.shape == shape and mask.dtype == bool for mask, _ in result.candidates)
    assert result.logits.shape == (4 * SAM_SIDE // 8, 4 * SAM_SIDE // 8)


def test_hf_sam_embed_and_segment(sam: HFSamSegmenter) -> None:
    assert isinstance(sam, Segmenter) and sam.name == "hf-sam"
    slices = [_slice().pixels, _slice(48, 40, seed=1).pixels]
    embeddings = sam.embed(slices)
    assert [e.original_size for e in embeddings] == [(64, 80), (48, 40)]
    assert embeddings[0].input_size == (51, 64) and embeddings[1].input_size == (64, 53)
    first, second = embeddings
    (boxed,) = sam.segment(first, [Prompt(box=(30.0, 14.0, 62.0, 40.0))])
    _check(boxed, (64, 80), 1)
    two_points = Prompt(points=np.array([[20.0, 30.0], [5.0, 5.0]]), point_labels=np.array([1, 0]))
    one_point = Prompt(points=np.array([[20.0, 30.0]]), point_labels=np.array([1]))
    results = sam.segment(second, [two_points, one_point])
    _check(results[0], (48, 40), 1)
    _check(results[1], (48, 40), 3)  # a lone point is ambiguous: three candidates
    (refined,) = sam.segment(first, [Prompt(box=(30.0, 14.0, 62.0, 40.0), mask_logits=boxed.logits)])
    _check(refined, (64, 80), 1)


def test_hf_sam_prompts_follow_the_pixel_resize(sam: HFSamSegmenter) -> None:
    """The slice's far corner lands on the resized image's far corner (per-axis scale, before padding)."""
    (embedding,) = sam.embed([_slice().pixels])  # 64 x 80 -> 51 x 64 inside the 64 x 64 input
    inputs = sam._prompt_inputs(embedding, Prompt(box=(0.0, 0.0, 80.0, 64.0), points=np.array([[40.0, 32.0]]),
                                                  point_labels=np.array([1])))
    np.testing.assert_allclose(inputs["input_boxes"].view(-1).cpu().numpy(), [0, 0, 64, 51], atol=1e-4)
    np.testing.assert_allclose(inputs["input_points"].view(-1).cpu().numpy(), [32, 25.5], atol=1e-4)


def test_hf_sam_missing_weights_offline(empty_hub: None) -> None:
    with pytest.raises(WeightsNotFoundError) as info:
        HFSamSegmenter.from_pretrained("facebook/sam-vit-base")
    message = str(info.value)
    assert "\n" not in message and "hf download facebook/sam-vit-base" in message and "--weights" in message


def test_wrong_architecture_is_refused(sam_dir: Path, dino_dir: Path) -> None:
    with pytest.raises(LimisError, match="not SAM"):
        HFSamSegmenter.from_pretrained(str(dino_dir))
    with pytest.raises(LimisError, match="not Grounding DINO"):
        GroundingDinoDetector.from_pretrained(str(sam_dir))


def test_incomplete_checkpoint_is_refused(sam_dir: Path, tmp_path: Path) -> None:
    """Strict loading: a checkpoint missing a tensor is an error, not a silently random-initialised layer."""
    from safetensors.torch import load_file, save_file

    for item in sam_dir.iterdir():
        shutil.copy(item, tmp_path / item.name)
    weights = load_file(tmp_path / "model.safetensors")
    weights.pop(next(k for k in weights if k.startswith("mask_decoder.")))
    save_file(weights, tmp_path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(LimisError, match="does not fit the SAM architecture"):
        HFSamSegmenter.from_pretrained(str(tmp_path))


def test_folder_without_config_is_refused(tmp_path: Path) -> None:
    with pytest.raises(WeightsNotFoundError, match=r"config\.json"):
        HFSamSegmenter.from_pretrained(str(tmp_path))


def test_limis_segment_end_to_end_with_local_tiny_models(dino_dir: Path, sam_dir: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """`limis segment` wiring with Grounding DINO (batched over slices, sides from geometry) and SamModel."""
    import json

    from limis.cli import main
    from limis.imaging.phantom import make_phantom

    paths = make_phantom(tmp_path / "phantom")
    out = tmp_path / "seg.nii.gz"
    code = main(["segment", str(paths["image"]), "left kidney", "liver", "-o", str(out), "--detector",
                 "grounding-dino", "--detector-weights", str(dino_dir), "--segmenter", "hf-sam",
                 "--weights", str(sam_dir), "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert [row["structure"] for row in report["structures"]] == ["kidney_left", "liver"]
    assert all(0.0 <= row["detector_score"] <= 1.0 for row in report["structures"])
