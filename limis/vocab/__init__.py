"""Anatomy vocabulary: user phrases -> canonical structure names, and dataset label tables.

Pure data plus pure Python; importing it loads neither torch nor numpy.

    >>> from limis.vocab import resolve
    >>> resolve("segment the left kidney").structures
    ('kidney_left',)
    >>> resolve("ribs").kind
    'group'

Left and right always mean the patient's side.
"""

from limis.vocab.lookup import (
    all_groups,
    all_structures,
    display_name,
    get_structure,
    label_ids,
    label_set,
    label_set_names,
    other_side,
    synonyms_of,
)
from limis.vocab.parser import Resolution, canonical_label_names, resolve, resolve_many, suggest
from limis.vocab.registry import Group, Structure

__all__ = [
    "Group",
    "Resolution",
    "Structure",
    "all_groups",
    "all_structures",
    "canonical_label_names",
    "display_name",
    "get_structure",
    "label_ids",
    "label_set",
    "label_set_names",
    "other_side",
    "resolve",
    "resolve_many",
    "suggest",
    "synonyms_of",
]
