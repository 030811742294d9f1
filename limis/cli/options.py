"""Model options declared once: every verb that builds models takes these, with one help text and one default.

A verb declares `segmenter: SegmenterOption = DEFAULTS.segmenter` (and so on) and turns what it
received into one `ModelOptions` (limis.pipeline.models), which builds the models. Defaults live
only in `ModelOptions`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from limis.pipeline.models import ModelOptions

DEFAULTS = ModelOptions()

SegmenterOption = Annotated[str, typer.Option("--segmenter", help="litemedsam | medsam_vit_b | sam_vit_b/l/h | hf-sam.")]
WeightsOption = Annotated[Optional[str], typer.Option(
    "--weights", help="Segmenter checkpoint file or folder (default: the shipped LiteMedSAM).")]
RuntimeOption = Annotated[str, typer.Option(
    "--runtime", help="LiteMedSAM engine: auto (on CPU openvino when installed, else onnxruntime, else torch) | torch | "
    "openvino (fp32 encoder, the fastest on CPU) | onnxruntime (both give torch's embeddings within 4e-6) | "
    "onnxruntime-int8 (int8 encoder, CPUs with VNNI only: ~1.4x faster, box Dice per organ within 0.003, but "
    "text-mode 3D answers can move: stomach -0.038 on the DICOM CT).")]
DetectorOption = Annotated[str, typer.Option(
    "--detector", help="auto (Grounding DINO if its weights are local, else lite-grounding) | lite-grounding | "
    "grounding-dino | oracle (boxes from --labels).")]
DetectorWeightsOption = Annotated[Optional[str], typer.Option(
    "--detector-weights", help="Grounding DINO folder or hub id, or a lite-grounding .safetensors head (default: shipped).")]
DeviceOption = Annotated[str, typer.Option("--device", help="cpu, cuda, cuda:1, ...")]
CacheDirOption = Annotated[Optional[Path], typer.Option(
    "--cache-dir", envvar="LIMIS_EMBEDDING_CACHE",
    help="Keep slice embeddings here so later runs on the same image skip encoding.")]
ModalityOption = Annotated[Optional[str], typer.Option(
    "--modality", help="CT | MR | XR | OT: overrides the guess from intensities (a CT clipped to [-125, 275] HU has no "
    "air and is guessed MR).")]
