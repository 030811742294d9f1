"""Phrase -> canonical structures: "segment the left kidney" -> ("kidney_left",).

Left and right always mean the patient's side. The parser only records the side the user
named; it never looks at an image, so it cannot confuse image left with patient left.

Matching order for one phrase:
1. a phrase with an underscore that is a canonical name ("kidney_left", "lung_left") names
   exactly that structure;
2. the whole normalised phrase as a vocabulary term ("l spine", "lul");
3. the phrase without its side words: numbered families ("7th rib", "L2"), then
   vocabulary terms, then the same words in any order ("lobe upper" = "upper lobe").
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache

from limis.errors import PhraseRefusedError, VocabularyError
from limis.vocab.lookup import canonical_name, concept_display
from limis.vocab.registry import (
    SIDES,
    Group,
    NumberedFamily,
    Structure,
    Vocabulary,
    VocabularyDataError,
    load_vocabulary,
)

_SIDE_WORDS = {
    "left": "left", "l": "left", "lt": "left", "sinister": "left", "sinistra": "left", "sinistrum": "left",
    "right": "right", "r": "right", "rt": "right", "dexter": "right", "dextra": "right", "dextrum": "right",
}
_BOTH_WORDS = frozenset({"both", "bilateral", "bilaterally"})
# Requests wrapped around a structure name; only removed from the start of a phrase.
_LEADING_WORDS = frozenset({
    "please", "kindly", "can", "could", "would", "will", "you", "i", "we", "want", "need", "like", "to",
    "let", "me", "us", "where", "is", "are", "what", "which", "segment", "segmentation", "show", "outline",
    "find", "highlight", "mark", "select", "get", "delineate", "contour", "locate", "detect", "draw",
    "display", "identify", "label", "annotate", "trace", "extract", "give", "mask", "box", "the", "a", "an",
})
_STOPWORDS = frozenset({
    "the", "a", "an", "my", "our", "this", "that", "these", "those", "of", "patient", "patients", "on",
    "in", "for", "side", "sided", "all", "please", "me", "image", "scan", "ct", "mri", "mr", "slice",
    "volume", "study", "number", "no",
})
_IRREGULAR_PLURALS = {
    "vertebrae": "vertebra", "femora": "femur", "humeri": "humerus", "glutei": "gluteus", "atria": "atrium",
    "costae": "costa", "renes": "ren", "venae": "vena", "cavae": "cava",
}
_NUMBER_WORDS = {
    word: n
    for n, words in enumerate(
        [("one", "first"), ("two", "second"), ("three", "third"), ("four", "fourth"), ("five", "fifth"),
         ("six", "sixth"), ("seven", "seventh"), ("eight", "eighth"), ("nine", "ninth"), ("ten", "tenth"),
         ("eleven", "eleventh"), ("twelve", "twelfth")],
        start=1,
    )
    for word in words
}
_NUMBER_RE = re.compile(r"^(\d{1,2})(?:st|nd|rd|th)?$")
_SHORTHAND_RE = re.compile(r"^([a-z]{1,2})(\d{1,2})$")
_LIST_SEPARATOR_RE = re.compile(r"(,|;|\+|&|\n|\band\b|\bplus\b|\bas well as\b)", re.IGNORECASE)
_LIST_HINT = "Every structure is listed by `limis vocab` (in the demo: 'What can I say?')."
MAX_PROMPT_CHARS = 200
# A query starting with one of these asks for everything but a structure, which LIMIS cannot do.
_NEGATIONS = frozenset({"not", "no", "except", "without", "exclude", "excluding"})
# Words that make a phrase a description ("gland behind the stomach"), left to the embedding matcher.
_RELATION_WORDS = frozenset({"that", "which", "behind", "under", "below", "above", "beside", "between", "near",
                             "after", "before", "from", "into", "inside", "around", "beneath"})


@dataclass(frozen=True)
class Resolution:
    """What a phrase names.

    `structures` are canonical names in vocabulary order; `laterality` is the side the user
    stated ("left" | "right" | None; "both" is recorded as None), always the patient's side.
    `matched` is the normalised vocabulary term that matched. `kind` is "structure" when the
    phrase names exactly one structure, "group" when it names several.
    """

    phrase: str
    structures: tuple[str, ...]
    laterality: str | None
    matched: str
    kind: str


@dataclass(frozen=True)
class _Target:
    """What a vocabulary term points at; `side` is set when the term itself carries a side."""

    kind: str  # "structure" | "concept" | "group"
    key: str
    side: str | None = None


class _UnknownPhrase(Exception):
    """No vocabulary term matched; turned into a VocabularyError with suggestions by resolve()."""


@dataclass(frozen=True)
class _Index:
    terms: dict[str, _Target]
    bags: dict[str, tuple[str, _Target] | None]  # sorted words -> (term, target); None if ambiguous
    family_terms: dict[str, str]  # "lumbar vertebra" -> family id
    family_nouns: dict[str, frozenset[str]]  # family id -> words allowed next to "L2"
    prefixes: dict[str, str]  # "l" -> family id
    candidates: tuple[tuple[str, str], ...]  # (normalised term, display that resolves to it)


# --------------------------------------------------------------------------- normalisation


def _words(text: str) -> list[str]:
    """Lower-case ASCII words; punctuation, hyphens and underscores become spaces."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    text = re.sub(r"'s\b", "", text)
    text = re.sub(r"\b(c|th|t|d|l|s)-(\d{1,2})\b", r"\1\2", text)  # "L-2" -> "l2"
    return re.sub(r"[^a-z0-9]+", " ", text).split()


def _singular(word: str) -> str:
    if word in _IRREGULAR_PLURALS:
        return _IRREGULAR_PLURALS[word]
    if len(word) <= 3 or word.endswith(("ss", "us", "is", "as", "os")):
        return word  # pancreas, humerus, pelvis, nephros are already singular
    if word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith("ae"):
        return word[:-1]
    if word.endswith("s"):
        return word[:-1]
    return word


def _normalise(text: str, strip_leading: bool = True) -> list[str]:
    words = _words(text)
    if strip_leading:
        while words and words[0] in _LEADING_WORDS:
            words = words[1:]
    return [_singular(word) for word in words if word not in _STOPWORDS]


def _key(text: str) -> str:
    return " ".join(_normalise(text, strip_leading=False))


def _bag(words: Iterable[str]) -> str:
    return " ".join(sorted(words))


def _split_side(words: list[str]) -> tuple[str | None, list[str]]:
    """Remove side words; returns ("left" | "right" | "both" | None, remaining words)."""
    sides: set[str] = set()
    core = []
    for i, word in enumerate(words):
        if word in _SIDE_WORDS:
            sides.add(_SIDE_WORDS[word])
        elif word in _BOTH_WORDS:
            sides.update(SIDES)
        elif word == "and" and any(
            0 <= j < len(words) and words[j] in _SIDE_WORDS for j in (i - 1, i + 1)
        ):
            continue  # "left and right kidney"
        else:
            core.append(word)
    if len(sides) == 2:
        return "both", core
    return next(iter(sides), None), core


def _number(word: str) -> int | None:
    if word in _NUMBER_WORDS:
        return _NUMBER_WORDS[word]
    match = _NUMBER_RE.match(word)
    return int(match.group(1)) if match else None


# --------------------------------------------------------------------------- index


def _concept_target(vocab: Vocabulary, base: str) -> _Target:
    concept = vocab.concepts[base]
    if None in concept.structures:
        return _Target("structure", concept.structures[None])
    return _Target("concept", base)


def _curated_terms(vocab: Vocabulary) -> list[tuple[str, _Target]]:
    terms = []
    for base, concept in vocab.concepts.items():
        terms += [(synonym, _concept_target(vocab, base)) for synonym in concept.synonyms]
        for side, synonyms in concept.side_synonyms.items():
            target = _Target("structure", concept.structures[side], side)
            terms += [(synonym, target) for synonym in synonyms]
    for group_id, group in vocab.groups.items():
        terms += [(synonym, _Target("group", group_id)) for synonym in group.synonyms]
    for family in vocab.families.values():
        for n, synonyms in family.extra_synonyms.items():
            names = [family.members[(side, n)] for side in family.sides or (None,)]
            if len(names) != 1:
                raise VocabularyDataError(f"structures.json: numbered synonyms {synonyms} must name an unpaired structure")
            terms += [(synonym, _Target("structure", names[0])) for synonym in synonyms]
    return terms


def _automatic_terms(vocab: Vocabulary) -> list[tuple[str, _Target]]:
    """Ids and displays; they never override a curated synonym, the first one wins."""
    terms = []
    for base, concept in vocab.concepts.items():
        target = _concept_target(vocab, base)
        terms += [(base.replace("_", " "), target), (concept.display, target)]
    for group_id, group in vocab.groups.items():
        terms += [(group_id.replace("_", " "), _Target("group", group_id)), (group.display, _Target("group", group_id))]
    return terms


def _candidates(vocab: Vocabulary, terms: dict[str, _Target]) -> tuple[tuple[str, str], ...]:
    """(term, display) pairs for suggestions; every display resolves to what the term names."""
    out = [(_key(s.display), s.display) for s in vocab.structures.values()]
    for term, target in terms.items():
        if target.kind == "structure":
            out.append((term, vocab.structures[target.key].display))
        elif target.kind == "concept":
            concept = vocab.concepts[target.key]
            out.append((term, concept_display(target.key)))
            out += [(f"{side} {term}", vocab.structures[name].display) for side, name in concept.structures.items()]
        else:
            group = vocab.groups[target.key]
            out.append((term, group.display))
            sides = {vocab.structures[m].laterality for m in group.members} - {None}
            out += [(f"{side} {term}", f"{side.capitalize()} {group.synonyms[0]}") for side in sorted(sides)]
    return tuple(dict.fromkeys(out))


def _family_tables(vocab: Vocabulary) -> tuple[dict[str, str], dict[str, frozenset[str]], dict[str, str]]:
    family_terms: dict[str, str] = {}
    family_nouns: dict[str, frozenset[str]] = {}
    prefixes: dict[str, str] = {}
    for family_id, family in vocab.families.items():
        for term in family.terms:
            if family_terms.setdefault(_key(term), family_id) != family_id:
                raise VocabularyDataError(f"structures.json: numbered term {term!r} is used by two families")
        family_nouns[family_id] = frozenset(_key(word) for word in family.nouns + family.terms)
        for prefix in family.prefixes:
            if prefixes.setdefault(prefix, family_id) != family_id:
                raise VocabularyDataError(f"structures.json: prefix {prefix!r} is used by two families")
    return family_terms, family_nouns, prefixes


@lru_cache(maxsize=1)
def _index() -> _Index:
    vocab = load_vocabulary()
    terms: dict[str, _Target] = {}
    for synonym, target in _curated_terms(vocab):
        key = _key(synonym)
        if terms.setdefault(key, target) != target:
            raise VocabularyDataError(f"structures.json: synonym {synonym!r} names both {terms[key].key!r} and {target.key!r}")
    for text, target in _automatic_terms(vocab):
        terms.setdefault(_key(text), target)

    bags: dict[str, tuple[str, _Target] | None] = {}
    for term, target in terms.items():
        bag = _bag(term.split())
        if bag in bags and (bags[bag] is None or bags[bag][1] != target):
            bags[bag] = None
        else:
            bags[bag] = (term, target)

    family_terms, family_nouns, prefixes = _family_tables(vocab)
    return _Index(
        terms=terms,
        bags=bags,
        family_terms=family_terms,
        family_nouns=family_nouns,
        prefixes=prefixes,
        candidates=_candidates(vocab, terms),
    )


# --------------------------------------------------------------------------- refusals


def _the(display: str) -> str:
    """'Liver' -> 'the liver'; keeps capitals of codes such as 'L2 vertebra'."""
    if len(display) > 1 and (display[1].isupper() or display[1].isdigit()):
        return f"the {display}"
    return f"the {display[:1].lower()}{display[1:]}"


def _unpaired(phrase: str, display: str, side: str) -> VocabularyError:
    said = "'both'" if side == "both" else f"'{side}'"
    return VocabularyError(
        f"'{phrase}': {_the(display)} is unpaired, so {said} does not apply. "
        f"Did you mean: {display}? Leave out the side.",
        suggestions=[display],
    )


def _side_missing(phrase: str, display: str, have: list[Structure]) -> VocabularyError:
    sides = " and ".join(dict.fromkeys(s.laterality or "" for s in have))
    displays = [s.display for s in have]
    return VocabularyError(
        f"'{phrase}': the vocabulary has {_the(display)} only on the {sides} side. "
        f"Did you mean: {', '.join(displays)}?",
        suggestions=displays,
    )


def _check_length(text: str) -> None:
    if len(text) > MAX_PROMPT_CHARS:
        raise PhraseRefusedError(
            f"the prompt is {len(text)} characters long; LIMIS takes at most {MAX_PROMPT_CHARS}: name the "
            "structures, e.g. 'left kidney, spleen'."
        )


def _check_form(phrase: str) -> None:
    """Refuse a phrase that is not English or starts with a negation, before any lookup."""
    if any(ch.isalpha() and not unicodedata.normalize("NFKD", ch).encode("ascii", "ignore") for ch in phrase):
        raise PhraseRefusedError(
            f"'{phrase}' is not understood: LIMIS expects English anatomical terms, e.g. 'left kidney'. {_LIST_HINT}"
        )
    words = _words(phrase)
    while words and words[0] in _LEADING_WORDS:
        words = words[1:]
    if words and words[0] in _NEGATIONS:
        raise PhraseRefusedError(
            f"'{phrase}': LIMIS cannot segment everything except a structure ('{words[0]}'); name the "
            "structures you want, e.g. 'liver' or 'liver and spleen'."
        )


def _check_sides(phrase: str, words: list[str], core: list[str]) -> None:
    """Refuse 'left right kidney': both sides named with neither 'and' nor 'both' between them."""
    named = {_SIDE_WORDS[w] for w in words if w in _SIDE_WORDS}
    if len(named) == 2 and "and" not in words and not _BOTH_WORDS & set(words):
        noun = " ".join(core) or "kidney"
        raise PhraseRefusedError(
            f"'{phrase}' names the left and the right side at once; say 'left {noun}', 'right {noun}' or "
            f"'both {noun}s'."
        )


def _check_modifier(phrase: str, core: list[str], index: _Index) -> None:
    """Refuse a known structure with words the vocabulary does not know ("liver tumor"), instead of dropping them."""
    if _RELATION_WORDS & set(core):
        return
    for size in range(len(core) - 1, 0, -1):
        for start in range(len(core) - size + 1):
            term = " ".join(core[start : start + size])
            if term in index.terms:
                extra = " ".join(core[:start] + core[start + size:])
                display = _target_display(index.terms[term])
                raise PhraseRefusedError(
                    f"'{phrase}': '{extra}' is not a known part or modifier of {_the(display)}; LIMIS segments "
                    f"whole structures: say '{term}'. {_LIST_HINT}",
                    suggestions=[display],
                )


def _target_display(target: _Target) -> str:
    vocab = load_vocabulary()
    if target.kind == "structure":
        return vocab.structures[target.key].display
    if target.kind == "concept":
        return concept_display(target.key)
    return vocab.groups[target.key].display


def _edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions)."""
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, start=1):
        current = [i]
        for j, char_b in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b)))
        previous = current
    return previous[-1]


def _near_miss(phrase: str, side: str | None, core: list[str], index: _Index) -> None:
    """Refuse a misspelling within 2 edits of exactly one known structure ("spleeen"), naming it."""
    key = " ".join(core)
    if len(key) < 4:
        return
    close = {target: term for term, target in index.terms.items()
             if len(term) >= 4 and abs(len(term) - len(key)) <= 2 and _edit_distance(key, term) <= 2}
    if len(close) != 1:
        return
    target, term = next(iter(close.items()))
    meant = f"{side} {term}" if side in SIDES else term
    raise PhraseRefusedError(f"Unknown structure '{phrase}'. Did you mean: {meant}? {_LIST_HINT}", suggestions=[meant])


# --------------------------------------------------------------------------- resolution


def _pick_side(
    phrase: str, names: tuple[str, ...], side: str | None, what: str, vocab: Vocabulary
) -> tuple[str, ...]:
    """Keep the structures on the stated side; refuse when the side does not apply."""
    if side is None:
        return names
    wanted = SIDES if side == "both" else (side,)
    sided = [vocab.structures[n] for n in names if vocab.structures[n].laterality is not None]
    if not sided:
        raise _unpaired(phrase, what, side)
    picked = tuple(s.name for s in sided if s.laterality in wanted)
    if not picked or (side == "both" and len({s.laterality for s in sided}) < 2):
        raise _side_missing(phrase, what, sided)
    return picked


def _from_target(phrase: str, target: _Target, side: str | None, matched: str) -> Resolution:
    vocab = load_vocabulary()
    if target.side is not None:
        if side not in (None, target.side):
            name = vocab.structures[target.key].display
            raise VocabularyError(
                f"'{phrase}': '{matched}' already means the {target.side} side, so '{side}' contradicts it. "
                f"Did you mean: {name}?",
                suggestions=[name],
            )
        side = target.side
    if target.kind == "structure":
        structure = vocab.structures[target.key]
        names = _pick_side(phrase, (structure.name,), side, structure.display, vocab)
    elif target.kind == "concept":
        concept = vocab.concepts[target.key]
        names = _pick_side(phrase, tuple(concept.structures.values()), side, concept.display, vocab)
    else:
        group: Group = vocab.groups[target.key]
        names = _pick_side(phrase, group.members, side, group.display, vocab)
    return _resolution(phrase, names, side, matched)


def _resolution(phrase: str, names: tuple[str, ...], side: str | None, matched: str) -> Resolution:
    """The answer for one phrase: one structure, or a group when several names remain."""
    return Resolution(
        phrase=phrase,
        structures=names,
        laterality=side if side in SIDES else None,
        matched=matched,
        kind="structure" if len(names) == 1 else "group",
    )


def _numbered(phrase: str, family: NumberedFamily, n: int, side: str | None, matched: str) -> Resolution:
    vocab = load_vocabulary()
    if not family.first <= n <= family.last:
        shown_side = side if side in family.sides else (family.sides[:1] or (None,))[0]
        nearest = sorted(range(family.first, family.last + 1), key=lambda k: abs(k - n))[:3]
        displays = [vocab.structures[family.members[(shown_side, k)]].display for k in nearest]
        numbers = f"{family.first} to {family.last}" if family.last > family.first else f"{family.first} only"
        raise VocabularyError(
            f"'{phrase}': there is no {family.label} {n} in the vocabulary (numbers {numbers}). "
            f"Did you mean: {', '.join(displays)}?",
            suggestions=displays,
        )
    names = tuple(family.members[(s, n)] for s in family.sides or (None,))
    what = vocab.structures[names[0]].display if len(names) == 1 else family.label
    names = _pick_side(phrase, names, side, what, vocab)
    return _resolution(phrase, names, side, matched)


def _try_numbered(phrase: str, core: list[str], side: str | None, index: _Index) -> Resolution | None:
    """'7th rib', 'rib 7', 'second lumbar vertebra', 'L2', 'L2 vertebra'; None if not numbered."""
    vocab = load_vocabulary()
    numbers = [(i, n) for i, word in enumerate(core) if (n := _number(word)) is not None]
    shorthands = [
        (i, m) for i, word in enumerate(core)
        if (m := _SHORTHAND_RE.match(word)) and m.group(1) in index.prefixes
    ]
    if len(shorthands) == 1 and not numbers:
        i, match = shorthands[0]
        family_id = index.prefixes[match.group(1)]
        rest = " ".join(core[:i] + core[i + 1:])
        if rest and rest not in index.family_nouns[family_id]:
            return None
        n = int(match.group(2))
        return _numbered(phrase, vocab.families[family_id], n, side, f"{match.group(1)}{n}")
    if len(numbers) == 1 and not shorthands:
        i, n = numbers[0]
        rest = " ".join(core[:i] + core[i + 1:])
        if rest not in index.family_terms:
            return None
        return _numbered(phrase, vocab.families[index.family_terms[rest]], n, side, f"{rest} {n}")
    return None


def _resolve(phrase: str) -> Resolution:
    """Resolve or raise: VocabularyError for a known phrase used wrongly, _UnknownPhrase otherwise."""
    if not isinstance(phrase, str):
        raise TypeError(f"phrase must be a str, not {type(phrase).__name__}")
    index = _index()
    vocab = load_vocabulary()
    # Only identifier-looking phrases are read as raw canonical names: the plain word
    # "vertebrae" means every vertebra, not TotalSegmentator-MR's single "vertebrae" label.
    identifier = canonical_name(phrase) if "_" in phrase else None
    if identifier is not None:
        structure = vocab.structures[identifier]
        return Resolution(phrase, (identifier,), structure.laterality, identifier, "structure")

    _check_form(phrase)
    words = _normalise(phrase)
    if not words:
        raise VocabularyError(
            f"Empty structure phrase {phrase!r}. Name a structure, e.g. 'left kidney'. {_LIST_HINT}"
        )
    full = " ".join(words)
    if full in index.terms:
        return _from_target(phrase, index.terms[full], None, full)

    side, core = _split_side(words)
    _check_sides(phrase, words, core)
    numbered = _try_numbered(phrase, core, side, index)
    if numbered is not None:
        return numbered
    key = " ".join(core)
    if key in index.terms:
        return _from_target(phrase, index.terms[key], side, key)
    by_bag = index.bags.get(_bag(core)) if core else None
    if by_bag is not None:
        term, target = by_bag
        return _from_target(phrase, target, side, term)
    _check_modifier(phrase, core, index)
    _near_miss(phrase, side, core, index)
    raise _UnknownPhrase(phrase)


# --------------------------------------------------------------------------- public API


def resolve(phrase: str) -> Resolution:
    """Resolve one phrase ("left kidney", "L2", "ribs") to canonical structures.

    Raises VocabularyError (one-line message, `.suggestions` = closest known terms) when the
    phrase names nothing known, or names a side that the structure does not have.
    """
    _check_length(phrase)
    try:
        return _resolve(phrase)
    except _UnknownPhrase:
        suggestions = suggest(phrase)
        raise VocabularyError(
            f"Unknown structure '{phrase}'. Did you mean: {', '.join(suggestions)}? {_LIST_HINT}",
            suggestions=suggestions,
        ) from None


def resolve_many(text: str) -> list[Resolution]:
    """Resolve a list such as "liver and spleen", "liver, spleen" or "kidneys + aorta".

    Commas and "and" also occur inside single phrases ("kidney, left", "left and right kidney",
    "portal vein and splenic vein"), so the longest run of parts that resolves is taken first.
    Raises VocabularyError for the first part that resolves to nothing.
    """
    _check_length(text)
    pieces = _LIST_SEPARATOR_RE.split(text)
    chunks, separators = pieces[0::2], pieces[1::2]

    def joined(i: int, j: int) -> str:
        out = chunks[i]
        for k in range(i + 1, j):
            out += separators[k - 1] + chunks[k]
        return out

    results: list[Resolution] = []
    i = 0
    while i < len(chunks):
        if not _normalise(chunks[i]):
            i += 1
            continue
        for j in range(len(chunks), i, -1):
            try:
                results.append(_resolve(joined(i, j).strip()))
            except (VocabularyError, _UnknownPhrase):
                continue
            i = j
            break
        else:
            resolve(chunks[i].strip())  # raises the error for this part
    if not results:
        resolve(text)  # raises: nothing but separators and filler words
    return results


def canonical_label_names(names: Mapping[int, str]) -> dict[int, str]:
    """Dataset label id -> name, each name resolved to its canonical structure ("postcava" -> "inferior_vena_cava").

    A name the vocabulary does not resolve to exactly one structure keeps its own spelling.
    """
    canonical = {}
    for label_id, name in names.items():
        try:
            found = resolve(name).structures
        except VocabularyError:  # a label the vocabulary does not know
            found = ()
        canonical[label_id] = found[0] if len(found) == 1 else name
    return canonical


def suggest(phrase: str, n: int = 3) -> list[str]:
    """The `n` closest known terms, as displays that resolve ("Left kidney", "Ribs").

    Score = string similarity + half the share of the term's words found in the phrase, so
    "abdominal aorta" suggests "Aorta" and "liver and spleen" suggests both.
    """
    words = _normalise(phrase)
    query = " ".join(words) or phrase.strip().lower()
    matcher = difflib.SequenceMatcher(autojunk=False)
    matcher.set_seq2(query)
    scored = []
    for position, (term, display) in enumerate(_index().candidates):
        matcher.set_seq1(term)
        term_words = term.split()
        overlap = sum(word in words for word in term_words) / len(term_words)
        scored.append((-(matcher.ratio() + 0.5 * overlap), position, display))
    scored.sort()
    return list(dict.fromkeys(display for _, _, display in scored))[:n]
