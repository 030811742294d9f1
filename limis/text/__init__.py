"""Text step: phrases to canonical structures (synonym table, then an embedding fallback)."""

from limis.text.resolver import resolve_phrase

__all__ = ["resolve_phrase"]
