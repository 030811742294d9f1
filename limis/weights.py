"""One owner for model weights: explicit path -> LIMIS weights dir -> local HF cache; never a silent download.

Every failure raises `WeightsNotFoundError` with one line saying where to put the files.
"""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache
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


def missing_pretrained_error(name_or_path: str, what: str, option: str = "--weights") -> WeightsNotFoundError:
    """The one-line message for a hub model that could not be loaded; `option` is the flag that takes a folder."""
    return WeightsNotFoundError(
        f"could not load {what} '{name_or_path}' (no local copy; the hub is unreachable or offline). On a connected "
        f"machine run `hf download {name_or_path} --local-dir DIR`, copy DIR here and pass {option} DIR."
    )


def sha256_of(path: str | Path) -> str:
    """Hex SHA-256 of a file (weights checks, export keys, run reports), remembered per path, size and mtime."""
    found = Path(path).resolve()
    stat = found.stat()
    return _sha256(str(found), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=32)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def load_transformers_model(model_class, processor_class, name_or_dir: str, model_type: str, what: str, option: str):
    """(model, processor) from a save_pretrained folder or a cached hub id, strictly.

    Refuses another architecture before transformers would fill it with random weights, and a
    checkpoint with missing or mis-shaped weights (transformers only logs those). `option` names
    the CLI flag of this model, for the messages.
    """
    from transformers import AutoConfig

    from limis.errors import LimisError

    source, local_only = resolve_pretrained(name_or_dir, what)
    try:
        config = AutoConfig.from_pretrained(source, local_files_only=local_only)
        if config.model_type != model_type:
            raise LimisError(f"'{name_or_dir}' holds a {config.model_type} model, not {what}; pass a {what} folder to {option}.")
        model, info = model_class.from_pretrained(source, config=config, local_files_only=local_only,
                                                  output_loading_info=True)
        processor = processor_class.from_pretrained(source, local_files_only=local_only)
    except (OSError, ValueError, KeyError):
        raise missing_pretrained_error(name_or_dir, f"{what} model", option) from None
    absent = [str(k) for k in [*info.get("missing_keys", ()), *info.get("mismatched_keys", ())]]
    if absent:
        raise LimisError(
            f"'{name_or_dir}' does not fit the {what} architecture ({len(absent)} weights missing or mis-shaped, "
            f"e.g. {absent[0]}); use the checkpoint's own folder from save_pretrained."
        )
    return model, processor
