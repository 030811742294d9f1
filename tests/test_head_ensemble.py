"""Ensemble heads: member probabilities averaged, each member reading its own context, trained as single heads."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from limis.detect.lite_grounding import HeadConfig, HeadEnsemble, LiteGroundingModel
from limis.errors import LimisError
from limis.train.lite_grounding_data import SliceRecord, TrainingSlices

REPO = Path(__file__).resolve().parents[1]
MANIFEST = REPO / "evaluation" / "datasets" / "grounding_train.yaml"


def ensemble_model(width: int = 16) -> LiteGroundingModel:
    torch.manual_seed(0)
    config = HeadConfig(width=width, context_slices=1, member_context=(0, 1))
    table = {"liver": torch.randn(384), "kidney": torch.randn(384)}
    return LiteGroundingModel(HeadEnsemble(config.member_context, width=width), table, config,
                              {"concepts": ["kidney", "liver"]})


def test_an_ensemble_averages_its_members_probabilities_each_on_its_own_slices() -> None:
    model = ensemble_model()
    generator = torch.Generator().manual_seed(1)
    embeddings, coords = torch.randn(2, 768, 64, 64, generator=generator), torch.randn(2, 5, 64, 64, generator=generator)
    text = model.text(["kidney", "liver"])
    with torch.inference_mode():
        mean = torch.softmax(model.head(embeddings, coords, text), dim=1)
        plain, context = model.head.members
        alone = torch.softmax(plain(embeddings[:, :256], coords, text), dim=1)
        expected = (alone + torch.softmax(context(embeddings, coords, text), dim=1)) / 2
        neighbours_moved = embeddings.clone()
        neighbours_moved[:, 256:] = 0
        moved = torch.softmax(model.head(neighbours_moved, coords, text), dim=1)
    assert plain.reduce[0].in_channels == 256 + 5 and context.reduce[0].in_channels == 768 + 5
    assert torch.allclose(mean, expected, atol=1e-6) and torch.allclose(mean.sum(1), torch.ones(2, 64, 64), atol=1e-5)
    # the neighbours move only the context member: the mean moves by half of its change
    with torch.inference_mode():
        context_moved = torch.softmax(context(neighbours_moved, coords, text), dim=1)
    assert not torch.allclose(moved, mean, atol=1e-4)
    assert torch.allclose(moved, (alone + context_moved) / 2, atol=1e-6)


def test_an_ensemble_head_file_loads_back_with_its_members(tmp_path: Path) -> None:
    model = ensemble_model()
    loaded = LiteGroundingModel.load(model.save(tmp_path / "ensemble.safetensors"))
    assert isinstance(loaded.head, HeadEnsemble) and loaded.config.member_context == (0, 1)
    assert loaded.config.context_slices == 1 and loaded.config.embed_dim == 768
    for saved, read in zip(model.head.state_dict().values(), loaded.head.state_dict().values()):
        assert torch.equal(saved, read)


def slices(count: int = 6) -> TrainingSlices:
    generator = torch.Generator().manual_seed(0)
    targets = torch.zeros(count, 1, 64, 64, dtype=torch.float16)
    targets[:, 0, 20:40, 20:40] = 1.0
    return TrainingSlices(torch.randn(count, 256, 64, 64, generator=generator).half(),
                          torch.randn(count, 5, 64, 64, generator=generator), targets,
                          torch.ones(count, 1, dtype=torch.bool), ["liver"],
                          [SliceRecord("case", i, "CT", "train") for i in range(count)])


def test_an_ensemble_recipe_trains_each_member_as_its_single_head_recipe_would(tmp_path: Path) -> None:
    from limis.train.lite_grounding import LiteGroundingTrainConfig, train_head, train_lite_grounding

    data = slices()
    recipe = dict(data=(), steps=3, batch_size=2, width=8, zoom=0.0, precision="fp32")
    config = LiteGroundingTrainConfig(**recipe, member_context=(0, 1))
    model, run = train_lite_grounding(config, tmp_path / "run", data=data, say=lambda line: None)
    assert model.config.member_context == (0, 1) and model.config.context_slices == 1
    for member, context in zip(model.head.members, (0, 1)):
        single = train_head(data, LiteGroundingTrainConfig(**recipe, context_slices=context), None, say=lambda line: None)
        assert member.reduce[0].in_channels == 256 * (1 + 2 * context) + 5
        assert all(torch.equal(a, b) for a, b in zip(member.state_dict().values(), single.state_dict().values()))
    assert [(run.dir / f"member{k}" / "metrics.csv").is_file() for k in (0, 1)] == [True, True]
    assert "ensemble of 2 heads" in model.metadata["format_note"]


@pytest.mark.parametrize("fields, said", [(dict(member_context=(1,)), "two or more"),
                                          (dict(member_context=(0, 1), context_slices=1), "two or more"),
                                          (dict(member_context=(0, -1)), "-1")])
def test_an_ensemble_recipe_that_cannot_be_built_is_refused(fields: dict, said: str) -> None:
    from limis.train.lite_grounding import LiteGroundingTrainConfig

    with pytest.raises(LimisError, match=said):
        LiteGroundingTrainConfig(data=(), **fields)



def single_head(context: int, seed: int, cases: list[str], width: int = 8) -> LiteGroundingModel:
    from limis.detect.lite_grounding import GroundingHead

    torch.manual_seed(seed)
    config = HeadConfig(width=width, context_slices=context, presence_thresholds={"liver": 0.4}, validated={"CT": ["liver"]})
    table = {"liver": torch.ones(384), "kidney": -torch.ones(384)}
    metadata = {"concepts": ["kidney", "liver"], "training_cases": cases, "encoder_sha256": "abc",
                "data": [f"{MANIFEST}:train"], "format_note": f"context {context}"}
    return LiteGroundingModel(GroundingHead(embed_dim=config.embed_dim, width=width), table, config, metadata)


def test_combining_heads_of_one_fold_gives_an_uncalibrated_ensemble_of_them(tmp_path: Path) -> None:
    from limis.train.lite_grounding import combine_heads

    plain, context = single_head(0, 0, ["a", "b"]), single_head(1, 1, ["a", "b"])
    ensemble = LiteGroundingModel.load(combine_heads([plain, context]).save(tmp_path / "e.safetensors"))
    assert ensemble.config.member_context == (0, 1) and ensemble.config.context_slices == 1
    assert ensemble.config.presence_thresholds == {} and ensemble.config.validated == {}  # the members' do not hold
    for member, model in zip(ensemble.head.members, (plain, context)):
        assert all(torch.equal(a, b) for a, b in zip(member.state_dict().values(), model.head.state_dict().values()))
    assert ensemble.metadata["training_cases"] == ["a", "b"] and "context 0 | context 1" in ensemble.metadata["format_note"]


@pytest.mark.parametrize("other, said", [(single_head(1, 1, ["a", "c"]), "training_cases"),
                                         (single_head(1, 1, ["a", "b"], width=16), "width")])
def test_heads_of_other_cases_or_shapes_are_not_combined(other: LiteGroundingModel, said: str) -> None:
    from limis.train.lite_grounding import combine_heads

    with pytest.raises(LimisError, match=said):
        combine_heads([single_head(0, 0, ["a", "b"]), other])
    with pytest.raises(LimisError, match="two or more single heads"):
        combine_heads([single_head(0, 0, ["a", "b"])])


@pytest.mark.parametrize("split, said", [("train", "trained on 1 of its cases"), ("fold9", "no case")])
def test_held_out_scores_are_refused_for_a_split_the_heads_saw(tmp_path: Path, capsys, split: str, said: str) -> None:
    from made_inputs import one_error_line

    from limis.cli import main

    heads = [str(single_head(c, c, ["example_ct"]).save(tmp_path / f"h{c}.safetensors")) for c in (0, 1)]
    code = main(["train", "combine-heads", "--head", heads[0], "--head", heads[1], "--out", str(tmp_path / "out"),
                 "--heldout", split])
    assert code == 2 and said in one_error_line(capsys) and not (tmp_path / "out").exists()
    assert main(["train", "combine-heads", "--head", heads[0], "--head", heads[1], "--out", str(tmp_path / "out")]) == 0
    assert LiteGroundingModel.load(tmp_path / "out" / "lite_grounding.safetensors").config.member_context == (0, 1)
