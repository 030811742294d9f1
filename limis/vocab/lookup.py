"""Looking up the vocabulary by canonical name: structures, groups, sides, displays, synonyms and label tables.

Exact names only; free-text phrases go through `limis.vocab.parser.resolve`.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from functools import lru_cache

from limis.errors import VocabularyError
from limis.vocab.registry import Group, Structure, load_vocabulary


@lru_cache(maxsize=1)
def _names_by_lower_case() -> dict[str, str]:
    return {name.lower(): name for name in load_vocabulary().structures}


def canonical_name(text: str) -> str | None:
    """The canonical structure name `text` spells up to case and outer spaces ("Kidney_Left" -> "kidney_left"), or None."""
    return _names_by_lower_case().get(text.strip().lower())


def concept_display(base: str) -> str:
    """A display that names a concept on every side it has (e.g. "Kidney" = both kidneys)."""
    vocab = load_vocabulary()
    concept = vocab.concepts[base]
    names = list(concept.structures.values())
    if len(names) == 1:
        return vocab.structures[names[0]].display
    return concept.display[:1].upper() + concept.display[1:]


def all_structures() -> list[Structure]:
    """Every canonical structure, in vocabulary order (abdomen to bones, then ribs and vertebrae)."""
    return list(load_vocabulary().structures.values())


def all_groups() -> list[Group]:
    """Every named group ("ribs", "lumbar_spine", ...)."""
    return list(load_vocabulary().groups.values())


def get_structure(name: str) -> Structure:
    """The structure with this canonical name; VocabularyError (with suggestions) if unknown."""
    vocab = load_vocabulary()
    if name in vocab.structures:
        return vocab.structures[name]
    exact = canonical_name(str(name))
    if exact is not None:
        return vocab.structures[exact]
    close = difflib.get_close_matches(str(name), list(vocab.structures), n=3, cutoff=0.0)
    raise VocabularyError(
        f"Unknown canonical structure name '{name}'. Did you mean: {', '.join(close)}? "
        "Use resolve() for free-text phrases.",
        suggestions=close,
    )


def other_side(name: str) -> str | None:
    """The same structure on the patient's other side ("kidney_left" -> "kidney_right"); None if unpaired or unknown."""
    try:
        entry = get_structure(name)
    except VocabularyError:
        return None
    if entry.laterality is None:
        return None
    other = "right" if entry.laterality == "left" else "left"
    return next((s.name for s in all_structures() if s.base == entry.base and s.laterality == other), None)


def display_name(name: str) -> str:
    """Human-readable name: "kidney_left" -> "Left kidney"; a concept base "iliac_vena" -> "Common iliac vein".

    Raises VocabularyError (a LimisError) for names that are neither.
    """
    vocab = load_vocabulary()
    if name in vocab.structures:
        return vocab.structures[name].display
    if name in vocab.concepts:
        return concept_display(name)
    return get_structure(name).display  # case-insensitive match, or raises with suggestions


def synonyms_of(name: str) -> tuple[str, ...]:
    """Phrases that name this canonical structure besides its display (laterality-free for paired ones)."""
    return get_structure(name).synonyms


def label_set_names() -> list[str]:
    """Names of the packaged dataset label tables ("totalsegmentator_total", "amos", ...)."""
    return list(load_vocabulary().label_sets)


def label_set(name: str) -> dict[int, str]:
    """Dataset label id -> canonical name, e.g. label_set("totalsegmentator_total")[3] == "kidney_left"."""
    tables = load_vocabulary().label_sets
    if name not in tables:
        raise VocabularyError(
            f"Unknown label set '{name}'. Known label sets: {', '.join(tables)}.",
            suggestions=difflib.get_close_matches(name, list(tables), n=3, cutoff=0.0),
        )
    return dict(tables[name])


def label_ids(structure: str, names: Mapping[int, str]) -> list[int]:
    """Reference label ids that make up `structure` in a label table {id: canonical name}.

    Its own label when the table has one; otherwise the labels of its parts, so "lung_left"
    against a reference of lobes is the union of the left lobes and "heart" the union of its
    chambers. Empty when neither the structure nor any part is labelled (a lobe is never taken
    from a whole-lung label: the whole does not say where the lobe is).
    """
    own = sorted(i for i, name in names.items() if name == structure)
    if own:
        return own
    entry = load_vocabulary().structures.get(structure)
    parts = set(entry.parts) if entry is not None else set()
    return sorted(i for i, name in names.items() if name in parts)
