"""SNOMED CT codes of the vocabulary structures, for DICOM-SEG segment descriptions.

The table `data/sct_codes.json` names, per structure or side-free concept, a keyword of
pydicom's SNOMED CT code dictionary (`pydicom.sr.codedict.codes.SCT`, generated from the DICOM
standard's context groups); values and meanings come from that dictionary, never typed here.
A paired structure's side is the SCT type modifier Left/Right, as the standard encodes it,
unless SNOMED has a lateralised concept (left atrium). Structures without a code are listed in
the table with a fixed code of the private scheme `99LIMIS` (never renumbered).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Literal

PRIVATE_SCHEME = "99LIMIS"
SIDE_KEYWORDS = {"left": "Left", "right": "Right"}


@dataclass(frozen=True)
class Code:
    """One coded concept: (value, scheme designator, meaning), e.g. ("10200004", "SCT", "Liver")."""

    value: str
    scheme: str
    meaning: str


@dataclass(frozen=True)
class StructureCode:
    """How one structure is coded in a SEG: category, type, optional laterality modifier, and which rule gave it."""

    category: Code
    type: Code
    modifier: Code | None
    match: Literal["exact", "parent", "private"]


@lru_cache(maxsize=1)
def code_table() -> dict:
    return json.loads(resources.files("limis.vocab").joinpath("data/sct_codes.json").read_text())


def sct(keyword: str) -> Code:
    """The dictionary's code for a keyword ("Liver" -> 10200004); KeyError names a keyword it lacks."""
    from pydicom.sr.codedict import codes

    try:
        found = getattr(codes.SCT, keyword)
    except AttributeError as error:
        raise KeyError(f"pydicom's SNOMED CT dictionary has no keyword {keyword!r}") from error
    return Code(found.value, found.scheme_designator, found.meaning)


def structure_code(name: str) -> StructureCode:
    """Codes of a canonical structure ("kidney_left" -> Kidney with modifier Left)."""
    from limis.vocab import get_structure

    structure = get_structure(name)
    table = code_table()
    category = sct(table["category"].get(structure.base, table["category"]["default"]))
    side = sct(SIDE_KEYWORDS[structure.laterality]) if structure.laterality else None
    for match in ("exact", "parent"):
        entries = table[match]
        if structure.name in entries:  # a lateralised concept, or an unpaired structure
            return StructureCode(category, sct(entries[structure.name]), None, match)
        if structure.base in entries:
            return StructureCode(category, sct(entries[structure.base]), side, match)
    if structure.base not in table["private"]:
        raise KeyError(f"{name!r} is neither coded nor listed as private in sct_codes.json")
    private = Code(table["private"][structure.base]["code"], PRIVATE_SCHEME, structure.display.removeprefix("Left ")
                   .removeprefix("Right ")[:64])
    return StructureCode(category, private, side, "private")
