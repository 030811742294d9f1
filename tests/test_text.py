"""Text step: the synonym table first, then the MiniLM embedding fallback (offline, shipped weights)."""

from __future__ import annotations

import pytest

from limis.errors import PhraseRefusedError, VocabularyError
from limis.text import resolve_phrase
from limis.text.matcher import EmbeddingMatcher


@pytest.fixture(scope="module")
def matcher() -> EmbeddingMatcher:
    return EmbeddingMatcher()


@pytest.mark.parametrize(
    "phrase, expected",
    [
        ("the organ that stores bile", ("gallbladder",)),
        ("the organ that pumps blood", ("heart",)),
        ("the windpipe", ("trachea",)),
        ("left bean shaped organ that makes urine", ("kidney_left",)),
    ],
)
def test_embedding_fallback(phrase: str, expected: tuple[str, ...], matcher: EmbeddingMatcher) -> None:
    resolved = resolve_phrase(phrase, matcher=matcher)
    assert resolved[0].structures == expected


def test_synonym_table_answers_first(matcher: EmbeddingMatcher) -> None:
    assert resolve_phrase("left renal", matcher=matcher)[0].structures == ("kidney_left",)


def test_nonsense_still_refused(matcher: EmbeddingMatcher) -> None:
    with pytest.raises(VocabularyError):
        resolve_phrase("purple elephant dancing", matcher=matcher)
    with pytest.raises(VocabularyError):
        resolve_phrase("the organ that stores bile", matcher=matcher, use_embeddings=False)


@pytest.mark.parametrize("phrase", ["not the liver", "liver tumor", "left right kidney", "spleeen"])
def test_refusals_of_form_are_not_reinterpreted_by_the_embeddings(phrase: str, matcher: EmbeddingMatcher) -> None:
    """Before, the embedding fallback turned 'not the liver' and 'liver tumor' into the whole liver."""
    with pytest.raises(PhraseRefusedError):
        resolve_phrase(phrase, matcher=matcher)


@pytest.mark.parametrize("phrase", ["tumor", "spleeen", "banana", "not the liver", "liver tumor", "左肾"])
def test_unknown_phrases_are_refused_without_loading_the_encoder(phrase: str, monkeypatch) -> None:
    import time

    from limis.text import resolver

    def no_encoder():
        raise AssertionError("the sentence encoder was loaded")

    monkeypatch.setattr(resolver, "shared_matcher", no_encoder)
    started = time.perf_counter()
    with pytest.raises(VocabularyError) as error:
        resolve_phrase(phrase)
    assert time.perf_counter() - started < 2.0
    if phrase == "spleeen":
        assert "Did you mean: spleen?" in str(error.value)


def test_a_description_around_a_named_structure_is_not_cut_down_to_it(matcher: EmbeddingMatcher) -> None:
    """The encoder matching 'stomach' in 'tumor behind the stomach' would drop the tumor: refused instead."""
    for phrase, known in (("tumor behind the stomach", "stomach"), ("mass under the liver", "liver")):
        with pytest.raises(PhraseRefusedError, match=f"knows only '{known}'; it segments whole structures"):
            resolve_phrase(phrase, matcher=matcher)
    assert resolve_phrase("gland behind the stomach", matcher=matcher)[0].structures == ("pancreas",)


def test_the_encoder_reproduces_the_shipped_heads_text_table(matcher: EmbeddingMatcher) -> None:
    """The head was trained on these exact vectors: an encoder change that moves them must fail here."""
    import numpy as np

    from limis.detect.lite_grounding import LiteGroundingModel, concept_text

    model = LiteGroundingModel.load()
    concepts = sorted(model.text_table)[:12]
    stored = np.stack([model.text_table[c].numpy() for c in concepts])
    fresh = matcher.encoder.encode([concept_text(c) for c in concepts])
    assert fresh.shape == (12, 384)
    np.testing.assert_allclose(np.linalg.norm(fresh, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(fresh, stored, atol=1e-5)
