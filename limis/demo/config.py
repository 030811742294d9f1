"""Demo options in one frozen dataclass with one set of defaults, and the auth parsers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from limis.errors import LimisError
from limis.pipeline.models import ModelOptions

Credentials = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class DemoConfig:
    """Everything `build_app` and `launch` need; the CLI passes only what the user set.

    `temp_dir` is the only folder the web server may serve files from (None: a fresh folder
    under the system temp dir). `models.cache_dir` persists slice embeddings across sessions
    and runs (same image, slice and window: no second encoding).
    """

    host: str = "127.0.0.1"
    port: int = 7860
    auth: Credentials = field(default=(), repr=False)  # never printed with the config
    max_upload_mb: float = 512.0
    concurrency_limit: int = 2
    log_dir: Path = Path("limis-output/study-logs")
    models: ModelOptions = ModelOptions()  # segmenter, encoder runtime, device, embedding cache folder
    session_cache_mb: int = 256
    temp_dir: Path | None = None
    asr_model: Path | None = None
    task_file: Path | None = None
    session_ttl_s: int = 4 * 3600

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


def parse_auth(text: str) -> tuple[str, str]:
    """'user:password' -> (user, password); the password may itself contain ':'."""
    user, sep, password = text.strip().partition(":")
    if not sep or not user or not password:
        raise LimisError("--auth needs USER:PASSWORD (both non-empty), e.g. --auth reader:s3cret.")
    return user, password


def read_auth_file(path: str | Path) -> Credentials:
    """One 'user:password' per line; blank lines and '#' comments are skipped."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise LimisError(f"{path}: cannot read the auth file ({error.strerror}); give a file of USER:PASSWORD lines.") from error
    pairs = tuple(parse_auth(line) for line in lines if line.strip() and not line.lstrip().startswith("#"))
    if not pairs:
        raise LimisError(f"{path}: no USER:PASSWORD line found; add one per collaborator.")
    return pairs
