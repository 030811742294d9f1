"""Text step: the synonym table first, then the MiniLM embedding fallback (offline, shipped weights)."""

from __future__ import annotations

import pytest

from limis.errors import VocabularyError
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
