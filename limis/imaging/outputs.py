"""Output files: checked before any model loads, written all-or-nothing, never over an input.

Checks are on resolved paths, so `CT.nii.gz` and `./CT.nii.gz` are the same file. Missing
parent folders are created at write time (as before); the nearest existing one must be a
writable folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from limis.errors import LimisError
from limis.staging import temporary_beside

LABELMAP_SUFFIXES = (".nii.gz", ".nii")


class OutputPathError(LimisError):
    """An output path is unusable (wrong type, not writable) or would replace an input or an existing file."""


def check_labelmap_name(out: Path) -> None:
    """The labelmap must be named .nii.gz or .nii, so the written file is the one the user named."""
    if not out.name.lower().endswith(LABELMAP_SUFFIXES):
        raise OutputPathError(f"{out}: the output labelmap must end in .nii.gz or .nii; e.g. -o {out.stem or 'seg'}.nii.gz")


def check_outputs(outputs: list[Path], inputs: list[Path | None], *, overwrite: bool, flag: str = "--overwrite") -> None:
    """Refuse, before any compute, outputs that would replace an input or (without `overwrite`) any existing file.

    `outputs` are every file the command will write (labelmap, sidecar, DICOM-SEG); `inputs`
    every file or folder it reads (None entries are options the user left out).
    """
    read = [_resolved(path) for path in inputs if path is not None]
    for output in outputs:
        target = _resolved(output)
        for source in read:
            if target == source or source in target.parents:
                what = "is" if target == source else "lies inside"
                raise OutputPathError(f"{output}: this output {what} the input {source}; choose another output name.")
        try:
            exists, is_dir = target.exists(), target.is_dir()
        except OSError as error:
            raise OutputPathError(f"{_shown(output)}: unusable output path ({error.strerror}); choose another name.") from error
        if is_dir:
            raise OutputPathError(f"{output}: is a folder; give a file name inside it, e.g. {output}/seg.nii.gz")
        if exists and not overwrite:
            raise OutputPathError(f"{output}: already exists; choose another name or pass {flag} to replace it.")
        _check_parent(output, target)


def _check_parent(output: Path, target: Path) -> None:
    folder = target.parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise OutputPathError(f"{output}: {folder} is a file, not a folder; choose another output folder.")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputPathError(f"{output}: the folder {folder} is not writable; choose another output folder.")


def commit_files(files: dict[Path, bytes]) -> list[Path]:
    """Write every file beside its target first, then move them all into place: all or nothing.

    An interrupt or error while staging removes the staged files and leaves the targets untouched.
    """
    staged: list[tuple[Path, Path]] = []
    try:
        for target, data in files.items():
            staged.append((_stage(target, data), target))
    except BaseException:
        for temporary, _ in staged:
            temporary.unlink(missing_ok=True)
        raise
    for temporary, target in staged:
        os.replace(temporary, target)
    return list(files)


def _stage(target: Path, data: bytes) -> Path:
    """Write `data` to a hidden temporary file beside `target`; a failed write leaves no file."""
    staged = temporary_beside(target)
    try:
        with staged.open("xb") as stream:
            stream.write(data)
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    return staged


def _resolved(path: Path) -> Path:
    try:
        return Path(path).expanduser().resolve()
    except OSError as error:
        raise OutputPathError(f"{_shown(path)}: unusable path ({error.strerror}); check the path.") from error


def _shown(path: Path) -> str:
    text = str(path)
    return text if len(text) <= 80 else text[:60] + "..." + text[-16:]
