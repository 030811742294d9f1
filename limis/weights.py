"""One owner for model weights: explicit path -> LIMIS weights dir -> local HF cache; never a silent download.

Every failure raises `WeightsNotFoundError` with one line saying where to put the files.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from limis.errors import WeightsNotFoundError


def weights_dir() -> Path:
    """Where LIMIS looks for named weights: $LIMIS_WEIGHTS_DIR or ~/.cache/limis/weights."""
    return Path(os.environ.get("LIMIS_WEIGHTS_DIR", Path.home() / ".cache" / "limis" / "weights"))


def resolve_file(explicit: str | Path | None, filename: str, what: str) -> Path:
    """A checkpoint file: the explicit path if given, else `weights_dir()/filename`."""
    candidates = [Path(explicit)] if explicit else [weights_dir() / filename]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    where = candidates[0]
    raise WeightsNotFoundError(
        f"{what} weights not found at {where}; download {filename} on a connected machine and pass "
        f"--weights PATH or place it in {weights_dir()}."
    )


def resolve_pretrained(name_or_path: str, what: str) -> tuple[str, bool]:
    """(source, local_files_only) for transformers `from_pretrained`.

    A local folder is used as is; a hub id is allowed only from the local cache when the hub is
    offline (HF_HUB_OFFLINE=1) so nothing is downloaded behind the user's back.
    """
    path = Path(name_or_path)
    if path.exists():
        if not (path / "config.json").is_file():
            raise WeightsNotFoundError(f"{path} holds no config.json; give a folder made by save_pretrained.")
        return str(path), True
    return name_or_path, os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0", "false", "False")


def missing_pretrained_error(name_or_path: str, what: str, error: Exception) -> WeightsNotFoundError:
    """The one-line message for a hub model that could not be loaded."""
    return WeightsNotFoundError(
        f"could not load {what} '{name_or_path}' (no local copy; the hub is unreachable or offline). On a connected "
        f"machine run `hf download {name_or_path} --local-dir DIR`, copy DIR here and pass --weights DIR."
    )


def sha256_of(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, for run reports."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()
