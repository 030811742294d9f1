"""The anatomy vocabulary tables, loaded from package data (pure Python, no torch/numpy).

`structures.json` holds the canonical structures in a compact form (one entry per
laterality-free concept, numbered families as rules); this module expands it into one
`Structure` per label a model can output and checks that the tables agree with each other.
`label_sets.json` maps dataset label ids to canonical names. Looking names up: `limis.vocab.lookup`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from importlib import resources
from types import MappingProxyType
from typing import Any

SIDES = ("left", "right")
CATEGORIES = ("organ", "vessel", "bone", "muscle", "airway", "other")


@dataclass(frozen=True)
class Structure:
    """One canonical structure: a single label that a segmentation model can output.

    `name` is the TotalSegmentator-style id ("kidney_left"), `base` the laterality-free
    concept ("kidney"; equal to `name` for unpaired structures), `laterality` the patient's
    side or None. `parts` is empty except for composite labels (e.g. "lung_left" in
    TotalSegmentator's MR task), where it lists the finer structures the label covers.
    """

    name: str
    display: str
    base: str
    laterality: str | None
    synonyms: tuple[str, ...]
    groups: tuple[str, ...]
    category: str
    parts: tuple[str, ...] = ()


@dataclass(frozen=True)
class Group:
    """A named set of structures ("ribs", "lumbar_spine"); members in vocabulary order."""

    id: str
    display: str
    synonyms: tuple[str, ...]
    members: tuple[str, ...]


@dataclass(frozen=True)
class Concept:
    """A laterality-free concept ("kidney") and the structure it names on each side.

    `structures` maps side -> canonical name; an unpaired concept has the single key None.
    """

    base: str
    display: str
    synonyms: tuple[str, ...]
    side_synonyms: Mapping[str, tuple[str, ...]]
    structures: Mapping[str | None, str]


@dataclass(frozen=True)
class NumberedFamily:
    """A family of numbered structures (ribs, lumbar vertebrae) generated from one rule.

    `members` maps (side, number) -> canonical name; side is None for unpaired families.
    """

    id: str
    label: str
    sides: tuple[str, ...]
    first: int
    last: int
    terms: tuple[str, ...]
    prefixes: tuple[str, ...]
    nouns: tuple[str, ...]
    members: Mapping[tuple[str | None, int], str]
    extra_synonyms: Mapping[int, tuple[str, ...]]  # e.g. 1 -> ("atlas",) for the cervical family


@dataclass(frozen=True)
class Vocabulary:
    """All vocabulary tables, read-only. Mappings keep the order of `structures.json`."""

    structures: Mapping[str, Structure]
    concepts: Mapping[str, Concept]
    groups: Mapping[str, Group]
    families: Mapping[str, NumberedFamily]
    label_sets: Mapping[str, Mapping[int, str]]
    label_set_notes: Mapping[str, str]


class VocabularyDataError(ValueError):
    """The packaged vocabulary tables contradict each other (a bug in the data, not user input)."""


def _read_json(filename: str) -> dict[str, Any]:
    text = resources.files("limis.vocab").joinpath("data", filename).read_text(encoding="utf-8")
    return json.loads(text)


def _capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


def _expand_concepts(
    concepts_json: Mapping[str, Mapping[str, Any]],
) -> tuple[dict[str, Concept], list[tuple[Structure, str | None]]]:
    """One Concept per entry and its Structures; composites built from a group get the group id."""
    concepts: dict[str, Concept] = {}
    structures: list[tuple[Structure, str | None]] = []
    for base, entry in concepts_json.items():
        category = entry["category"]
        if category not in CATEGORIES:
            raise VocabularyDataError(f"structures.json: {base!r} has unknown category {category!r}")
        sides = tuple(entry.get("sides", ()))
        if any(side not in SIDES for side in sides):
            raise VocabularyDataError(f"structures.json: {base!r} has sides {sides}, expected left/right")
        synonyms = tuple(entry.get("synonyms", ()))
        side_synonyms = {side: tuple(terms) for side, terms in entry.get("side_synonyms", {}).items()}
        groups = tuple(entry.get("groups", ()))
        parts = entry.get("parts", ())
        by_side: dict[str | None, str] = {}
        for side in sides or (None,):
            name = f"{base}_{side}" if side else base
            display = f"{_capitalise(side)} {entry['display']}" if side else _capitalise(entry["display"])
            side_parts = parts.get(side, ()) if isinstance(parts, Mapping) else parts
            structure = Structure(
                name=name,
                display=display,
                base=base,
                laterality=side,
                synonyms=synonyms + side_synonyms.get(side, ()),
                groups=groups,
                category=category,
                parts=tuple(side_parts),
            )
            structures.append((structure, entry.get("parts_group")))
            by_side[side] = name
        concepts[base] = Concept(
            base=base,
            display=entry["display"],
            synonyms=synonyms,
            side_synonyms=MappingProxyType(side_synonyms),
            structures=MappingProxyType(by_side),
        )
    return concepts, structures


_ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth",
             "ninth", "tenth", "eleventh", "twelfth")


def _expand_numbered(
    numbered_json: Mapping[str, Mapping[str, Any]],
) -> tuple[dict[str, NumberedFamily], list[Structure]]:
    """Generate the numbered structures (24 ribs, 25 vertebrae) from their family rules."""
    families: dict[str, NumberedFamily] = {}
    structures: list[Structure] = []
    for family_id, rule in numbered_json.items():
        first, last = rule["numbers"]
        sides = tuple(rule.get("sides", ()))
        terms = tuple(rule["terms"])
        prefixes = tuple(rule.get("prefixes", ()))
        members: dict[tuple[str | None, int], str] = {}
        for side in sides or (None,):
            for n in range(first, last + 1):
                fields = {"n": n, "side": side or "", "Side": _capitalise(side or "")}
                name = rule["name"].format(**fields)
                generated = (
                    tuple(f"{prefix.upper()}{n}" for prefix in prefixes[:1])
                    + (f"{terms[0]} {n}", f"{_ORDINALS[n - 1]} {terms[0]}")
                    + tuple(rule.get("synonyms", {}).get(str(n), ()))
                )
                structures.append(
                    Structure(
                        name=name,
                        display=rule["display"].format(**fields),
                        base=rule.get("base", rule["name"]).format(**fields),
                        laterality=side,
                        synonyms=generated,
                        groups=tuple(rule.get("groups", ())),
                        category=rule["category"],
                    )
                )
                members[(side, n)] = name
        families[family_id] = NumberedFamily(
            id=family_id,
            label=rule["label"],
            sides=sides,
            first=first,
            last=last,
            terms=terms,
            prefixes=prefixes,
            nouns=tuple(rule.get("nouns", ())),
            members=MappingProxyType(members),
            extra_synonyms=MappingProxyType(
                {int(n): tuple(terms) for n, terms in rule.get("synonyms", {}).items()}
            ),
        )
    return families, structures


def _build_groups(
    groups_json: Mapping[str, Mapping[str, Any]], structures: Mapping[str, Structure]
) -> dict[str, Group]:
    members: dict[str, list[str]] = {group_id: [] for group_id in groups_json}
    for structure in structures.values():
        for group_id in structure.groups:
            if group_id not in members:
                raise VocabularyDataError(
                    f"structures.json: {structure.name!r} names group {group_id!r}, which is not in 'groups'"
                )
            members[group_id].append(structure.name)
    groups = {}
    for group_id, entry in groups_json.items():
        if not members[group_id]:
            raise VocabularyDataError(f"structures.json: group {group_id!r} has no members")
        groups[group_id] = Group(
            id=group_id,
            display=entry["display"],
            synonyms=tuple(entry.get("synonyms", ())),
            members=tuple(members[group_id]),
        )
    return groups


def _build_label_sets(
    label_json: Mapping[str, Any], structures: Mapping[str, Structure]
) -> tuple[dict[str, Mapping[int, str]], dict[str, str]]:
    notes = dict(label_json.get("_notes", {}))
    tables: dict[str, Mapping[int, str]] = {}
    for set_name, table in label_json.items():
        if set_name.startswith("_"):
            continue
        unknown = sorted(name for name in table.values() if name not in structures)
        if unknown:
            raise VocabularyDataError(f"label_sets.json: {set_name!r} uses unknown structures {unknown}")
        tables[set_name] = MappingProxyType({int(label): name for label, name in table.items()})
    return tables, notes


@lru_cache(maxsize=1)
def load_vocabulary() -> Vocabulary:
    """Read and cross-check the packaged tables once; later calls return the same object."""
    data = _read_json("structures.json")
    concepts, concept_structures = _expand_concepts(data["concepts"])
    families, numbered_structures = _expand_numbered(data["numbered"])

    ordered = [structure for structure, _ in concept_structures] + numbered_structures
    structures: dict[str, Structure] = {}
    for structure in ordered:
        if structure.name in structures:
            raise VocabularyDataError(f"structures.json: structure {structure.name!r} is defined twice")
        structures[structure.name] = structure

    groups = _build_groups(data["groups"], structures)
    # Composites may take their parts from a group ("vertebrae" = every vertebra).
    for structure, parts_group in concept_structures:
        if parts_group:
            if parts_group not in groups:
                raise VocabularyDataError(f"structures.json: {structure.name!r} parts_group {parts_group!r} is unknown")
            structures[structure.name] = replace(structure, parts=groups[parts_group].members)
    for structure in structures.values():
        missing = [part for part in structure.parts if part not in structures or part == structure.name]
        if missing:
            raise VocabularyDataError(f"structures.json: {structure.name!r} has unknown parts {missing}")

    label_sets, notes = _build_label_sets(_read_json("label_sets.json"), structures)
    return Vocabulary(
        structures=MappingProxyType(structures),
        concepts=MappingProxyType(concepts),
        groups=MappingProxyType(groups),
        families=MappingProxyType(families),
        label_sets=MappingProxyType(label_sets),
        label_set_notes=MappingProxyType(notes),
    )
