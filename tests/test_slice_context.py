"""Neighbouring-slice context: a slice's neighbours, the rows training reads, and a context head at inference."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from made_inputs import SeededEmbeddings

from limis.detect.lite_grounding import GroundingHead, HeadConfig, LiteGroundingDetector, LiteGroundingModel, context_offsets
from limis.train.lite_grounding_data import SliceRecord, TrainingSlices


@pytest.fixture(scope="module")
def phantom_volume(tmp_path_factory):
    from limis.imaging import load_image
    from limis.imaging.phantom import make_phantom

    return load_image(make_phantom(tmp_path_factory.mktemp("phantom"))["image"])


def axial(volume, index: int):
    from limis.imaging.display import CT_WINDOWS, Plane
    from limis.pipeline.slices import slice_image

    return slice_image(volume, Plane.AXIAL, index, CT_WINDOWS["abdomen"])


def test_offsets_are_the_slice_then_nearest_neighbours_below_and_above() -> None:
    assert context_offsets(0) == (0,) and context_offsets(1) == (0, -1, 1) and context_offsets(2) == (0, -1, 1, -2, 2)
    assert HeadConfig().embed_dim == 256 and HeadConfig(context_slices=1).embed_dim == 768


def test_a_slice_knows_its_neighbours_clamped_at_the_volume_ends(phantom_volume) -> None:
    last = phantom_volume.shape[2] - 1
    middle = axial(phantom_volume, 5)
    below, above = middle.neighbour(-1), middle.neighbour(1)
    assert below.key == axial(phantom_volume, 4).key and above.key == axial(phantom_volume, 6).key
    assert (above.pixels == axial(phantom_volume, 6).pixels).all() and above.window == middle.window
    assert axial(phantom_volume, 0).neighbour(-1).key == axial(phantom_volume, 0).key
    assert axial(phantom_volume, last).neighbour(2).key == axial(phantom_volume, last).key
    assert axial(phantom_volume, last).neighbour(-2).key == axial(phantom_volume, last - 2).key
    lone = replace(middle, slice_at=None)  # a picture without its volume stands in for its neighbours
    assert lone.neighbour(1) is lone


def test_training_reads_neighbours_of_the_same_case_clamped_to_its_loaded_slices() -> None:
    records = [SliceRecord("a", i, "CT", "fold0") for i in (0, 2, 4, 6)] + [SliceRecord("b", i, "MR", "fold1") for i in (0, 2)]
    embeddings = torch.arange(6, dtype=torch.float16)[:, None, None, None].expand(6, 256, 64, 64).contiguous()
    data = TrainingSlices(embeddings, torch.zeros(6, 5, 64, 64), torch.zeros(6, 1, 64, 64), torch.ones(6, 1, dtype=torch.bool),
                          ["liver"], records, slice_step=2)
    rows = data.context_rows(1)
    assert rows.tolist() == [[0, 0, 1], [1, 0, 2], [2, 1, 3], [3, 2, 3], [4, 4, 5], [5, 4, 5]]
    assert data.context_rows(2)[1].tolist() == [1, 0, 2, 0, 3] and data.context_rows(0).tolist() == [[i] for i in range(6)]
    inputs = data.head_inputs(rows, torch.tensor([2, 5]))
    assert inputs.shape == (2, 768, 64, 64) and inputs.dtype == torch.float32
    assert inputs[:, ::256, 0, 0].tolist() == [[2.0, 1.0, 3.0], [5.0, 4.0, 5.0]]


def context_model(width: int = 16) -> LiteGroundingModel:
    torch.manual_seed(0)
    config = HeadConfig(width=width, context_slices=1)
    table = {"liver": torch.randn(384), "kidney": torch.randn(384)}
    return LiteGroundingModel(GroundingHead(embed_dim=config.embed_dim, width=width), table, config,
                              {"concepts": ["kidney", "liver"]})


def test_a_context_head_reads_the_slices_above_and_below(phantom_volume, tmp_path: Path) -> None:
    from limis.detect.lite_grounding import coordinate_channels, slice_pixel_mm

    model = LiteGroundingModel.load(context_model().save(tmp_path / "context.safetensors"))
    assert model.config.context_slices == 1 and model.head.reduce[0].in_channels == 768 + 5
    images = [axial(phantom_volume, i) for i in (0, 5, 9)]
    embeddings = SeededEmbeddings()
    detector = LiteGroundingDetector(model, embeddings)
    wanted = {axial(phantom_volume, i).key for i in (0, 1, 4, 5, 6, 8, 9, 10)}
    assert {image.key for image in detector.slices_read(images)} == wanted and len(detector.slices_read(images)) == 8
    probs = detector.grid_probabilities(images, ["liver"])
    assert set(embeddings.keys) == wanted
    with torch.inference_mode():
        stacked = torch.cat([torch.cat([embeddings.features(axial(phantom_volume, j).key) for j in trio], dim=1)
                             for trio in ((0, 0, 1), (5, 4, 6), (9, 8, 10))])
        coords = torch.stack([coordinate_channels(im.pixels, slice_pixel_mm(im)) for im in images])
        expected = torch.softmax(model.head(stacked, coords, model.text(["kidney", "liver"])), dim=1)[:, 2]
    assert torch.allclose(probs[:, 0], expected.half().float(), atol=1e-3)
    moved = SeededEmbeddings({axial(phantom_volume, 6).key: torch.zeros(1, 256, 64, 64)})
    answer = LiteGroundingDetector(model, moved).grid_probabilities(images, ["liver"])
    assert not torch.allclose(answer[1], probs[1]) and torch.equal(answer[[0, 2]], probs[[0, 2]])


def test_a_context_recipe_trains_a_head_that_reads_three_slices() -> None:
    from limis.train.lite_grounding import LiteGroundingTrainConfig, train_head

    generator = torch.Generator().manual_seed(0)
    targets = torch.zeros(4, 1, 64, 64, dtype=torch.float16)
    targets[:, 0, 20:40, 20:40] = 1.0
    data = TrainingSlices(torch.randn(4, 256, 64, 64, generator=generator).half(), torch.randn(4, 5, 64, 64, generator=generator),
                          targets, torch.ones(4, 1, dtype=torch.bool), ["liver"],
                          [SliceRecord("case", i, "CT", "train") for i in range(4)])
    config = LiteGroundingTrainConfig(data=(), steps=2, batch_size=2, width=8, zoom=0.0, precision="fp32", context_slices=1)
    head = train_head(data, config, None, say=lambda line: None)
    assert head.reduce[0].in_channels == 768 + 5 and config.head_config.context_slices == 1
    assert config.head_config.width == 8
