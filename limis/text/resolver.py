"""The text step before detection: free phrase -> canonical structures.

The synonym table answers first; phrases it misses may go to the embedding matcher, and the
laterality the user stated is kept (patient's side) and applied to the matched concept.
"""

from __future__ import annotations

import re

from limis.errors import VocabularyError
from limis.text.matcher import EmbeddingMatcher, shared_matcher

_SIDE_WORDS = re.compile(r"\b(left|right)\b", re.IGNORECASE)


def resolve_phrase(phrase: str, matcher: EmbeddingMatcher | None = None, use_embeddings: bool = True):
    """Resolutions (limis.vocab.Resolution) for a phrase that may name several structures."""
    from limis import vocab

    try:
        return vocab.resolve_many(phrase)
    except VocabularyError as refusal:
        if not use_embeddings:
            raise
        found = (matcher or shared_matcher()).match(phrase)
        if found is None:
            raise refusal
        side = _SIDE_WORDS.search(phrase)
        term = f"{side.group(1).lower()} {found.term}" if side else found.term
        try:
            return vocab.resolve_many(term.replace("_", " "))
        except VocabularyError:
            raise refusal from None
