"""User-facing errors: each carries one line saying what was wrong and what to do."""


class LimisError(Exception):
    """A mistake the user can fix; the CLI and demo show its message as one line."""


class ImageReadError(LimisError):
    """An input image could not be read (missing, corrupt, unsupported)."""


class VocabularyError(LimisError):
    """A phrase names no known structure; the message lists the closest known terms."""

    def __init__(self, message: str, suggestions: list[str] | None = None) -> None:
        super().__init__(message)
        self.suggestions = suggestions or []


class WeightsNotFoundError(LimisError):
    """Model weights are not present locally and cannot be downloaded."""


class NotInImageError(LimisError):
    """A known structure was asked for but is not present in this image."""


class PhraseRefusedError(VocabularyError):
    """A phrase refused for its form; no fallback (such as the embedding matcher) may reinterpret it.

    Negation, a modifier the vocabulary does not know, both sides without 'and', a near-miss
    spelling, a prompt over the length cap, or words that are not English.
    """
