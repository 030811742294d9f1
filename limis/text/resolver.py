"""The text step before detection: free phrase -> canonical structures; `limis segment` and `limis vocab` both use it.

The synonym table answers first. Phrases it refuses for their form (negation, an unknown modifier,
both sides, a misspelling, too long, not English) stay refused; other misses go to the embedding
matcher only when they share a word with its evidence texts, so "banana" is refused in
milliseconds, without loading the encoder. The laterality the user stated is kept (patient's
side) and applied to the matched concept.
"""

from __future__ import annotations

import re

from limis.errors import PhraseRefusedError, VocabularyError
from limis.text.matcher import EmbeddingMatcher, could_match, only_names, shared_matcher

_SIDE_WORDS = re.compile(r"\b(left|right)\b", re.IGNORECASE)


def resolve_phrase(phrase: str, matcher: EmbeddingMatcher | None = None, use_embeddings: bool = True):
    """Resolutions (limis.vocab.Resolution) for a phrase that may name several structures."""
    from limis import vocab

    try:
        return vocab.resolve_many(phrase)
    except PhraseRefusedError:
        raise
    except VocabularyError as refusal:
        if not use_embeddings or not could_match(phrase):
            raise
        found = (matcher or shared_matcher()).match(phrase)
        if found is None:
            raise refusal
        if only_names(phrase, found):  # "tumour behind the stomach" must not become the stomach
            raise PhraseRefusedError(
                f"'{phrase}': of these words LIMIS knows only '{found.evidence}'; it segments whole structures: "
                f"say '{found.evidence}'.", suggestions=[found.evidence]) from None
        side = _SIDE_WORDS.search(phrase)
        term = f"{side.group(1).lower()} {found.term}" if side else found.term
        try:
            return vocab.resolve_many(term.replace("_", " "))
        except VocabularyError:
            raise refusal from None
