"""Detector builders by name."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from limis.errors import LimisError
from limis.imaging.volume import Volume

DETECTORS = ("auto", "lite-grounding", "grounding-dino", "oracle")


def read_label_names(path: str | Path, label_set: str | None = None) -> dict[int, str]:
    """Label id -> canonical name from a JSON table (flat {"1": "spleen"} or TotalSegmentator's {"total": {...}}).

    Names that are not canonical (e.g. AMOS "postcava") are resolved through the vocabulary.
    """
    from limis import vocab

    path = Path(path)
    try:
        table = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise LimisError(f"{path}: not a readable JSON label map ({error}); give {{\"1\": \"spleen\", ...}}.") from error
    if not isinstance(table, dict):
        raise LimisError(f"{path}: a label map is a JSON object of id -> name; give {{\"1\": \"spleen\", ...}}.")
    if "labels" in table and isinstance(table["labels"], list):  # LIMIS sidecar
        table = {str(row["id"]): row["name"] for row in table["labels"]}
    nested = {k: v for k, v in table.items() if isinstance(v, dict)}
    if nested:
        key = label_set or ("total" if "total" in nested else next(iter(nested)))
        if key not in nested:
            raise LimisError(f"{path}: no label set '{key}'; it has: {', '.join(nested)}.")
        table = nested[key]
    names = {int(label_id): str(name) for label_id, name in table.items() if str(label_id).isdigit() and int(label_id) != 0}
    return vocab.canonical_label_names(names)


def build_detector(
    name: str,
    *,
    volume: Volume,
    weights: str | None = None,
    labels: str | Path | None = None,
    label_map: str | Path | None = None,
    device: str = "cpu",
    embeddings=None,
):
    """Build a detector for one image; the oracle needs the reference labels and their names.

    `auto` is Grounding DINO when its weights are given or cached locally, else the shipped
    lite-grounding head. `embeddings` is the caller's `EmbeddingCache`: lite-grounding reads the
    segmenter's own embeddings from it when the segmenter is its LiteMedSAM, so each slice is
    encoded once; with another segmenter it gets a LiteMedSAM cache of its own.
    """
    if name == "auto":
        name = _auto_choice(weights)
    if name == "lite-grounding":
        from limis.detect.lite_grounding import LiteGroundingDetector

        model = load_lite_grounding(weights)
        return LiteGroundingDetector(model, lite_grounding_embeddings(model, embeddings, device))
    if name == "oracle":
        if not labels or not label_map:
            raise LimisError("the oracle detector needs --labels REF.nii.gz and --label-map MAP.json.")
        from limis.detect.oracle import OracleDetector
        from limis.imaging.align import load_labelmap_on

        return OracleDetector(load_labelmap_on(volume, labels), read_label_names(label_map))
    if name == "grounding-dino":
        from limis.detect.grounding_dino import DEFAULT_MODEL, GroundingDinoDetector

        return GroundingDinoDetector.from_pretrained(weights or DEFAULT_MODEL, device=device)
    raise LimisError(f"unknown detector '{name}'; choose one of: {', '.join(DETECTORS)}.")


@lru_cache(maxsize=4)
def load_lite_grounding(weights: str | None = None):
    """The lite-grounding model (read-only, shared by every detector built from it)."""
    from limis.detect.lite_grounding import LiteGroundingModel

    return LiteGroundingModel.load(weights)


def lite_grounding_embeddings(model, embeddings, device: str):
    """`embeddings` if its segmenter is the LiteMedSAM the head was trained on, else a LiteMedSAM cache of its own."""
    from limis.detect.lite_grounding import check_encoder

    if embeddings is not None:
        try:
            check_encoder(model, embeddings.segmenter)
            return embeddings
        except LimisError:
            pass
    from limis.segment.builders import build_litemedsam
    from limis.segment.cache import EmbeddingCache

    return EmbeddingCache(build_litemedsam(device=device), disk_dir=embeddings.disk_dir if embeddings is not None else None)


def _auto_choice(weights: str | None) -> str:
    """grounding-dino for a model folder or a locally cached hub model, lite-grounding otherwise."""
    from limis.detect.grounding_dino import DEFAULT_MODEL

    if weights:
        return "grounding-dino" if (Path(weights) / "config.json").is_file() or not Path(weights).suffix else "lite-grounding"
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(DEFAULT_MODEL, "config.json")
    except Exception:  # no hub client or an unreadable cache: nothing cached
        cached = None
    return "grounding-dino" if isinstance(cached, str) else "lite-grounding"
