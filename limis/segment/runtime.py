"""LiteMedSAM runtimes: torch eager, OpenVINO or onnxruntime on ONNX exports of the same weights (fp32, or an
int8 encoder).

Three exports, each written once into the weights cache and keyed by the checkpoint's SHA-256:
the image encoder (embeddings equal torch's within 4e-6, tested), the mask decoder for the
single-mask case, which every box prompt and refinement uses (logits within 1e-4; `limis bench`
measured it 1.6x faster than torch on one thread), and the prompt encoder for a box alone, with the
fixed positional encoding of the embedding grid. Once the exports exist a box-prompted run never builds
the torch model: LiteMedSAM's TinyViT code imports timm, which imports torchvision and torch's compiler
stack (~300 MiB resident). Points, masks and the three-candidate decoder a lone click asks for stay in
torch; the segmenter builds the torch model the first time one of them is asked for.

- `openvino` (the default on CPU when installed) runs the encoder export through OpenVINO in fp32
  (embeddings within 4e-6 of torch, box masks identical on BTCV validation slices) and the decoder
  export through onnxruntime, which was faster for it (23 against 28 ms per call on 2 threads). On an
  AMX Xeon the encoder took 0.34 s per slice against onnxruntime's 0.55 s. OpenVINO's bf16 precision
  was 2.5x faster still but moved embeddings by 4.8% and the stomach's box Dice by 0.0085, so it is not
  offered (`evaluation/speed/encoder_precision.py`). Both packages' usage telemetry is switched off when
  `limis` is imported (`limis.privacy`).
- `onnxruntime` runs both exports through onnxruntime.
- `onnxruntime-int8` replaces the encoder's MatMul weights by per-channel int8 with dynamically
  quantised activations (onnxruntime's `quantize_dynamic`, written once beside the fp32 export):
  embeddings within ~7% relative error, box-prompt Dice per organ within 0.003 of fp32 on BTCV validation
  slices and ~1.4x faster on 2 threads, measured on a CPU with VNNI; on an AVX2 CPU without VNNI two
  organs lost more than 0.005, so there it is refused (`int8_validated_cpu`); static int8 of the
  convolutions lost up to 0.12 Dice per organ and was slower, so it is not offered. In text mode the int8
  embeddings also move the grounding head's seeds: on the DICOM CT the stomach lost 0.038 (an AMX Xeon,
  2026-12-04), so int8 stays opt-in and out of reported numbers.
"""

from __future__ import annotations

import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from limis.errors import LimisError
from limis.staging import replaced_on_success

RUNTIMES = ("auto", "torch", "openvino", "onnxruntime", "onnxruntime-int8")
ONNX_RUNTIMES = ("onnxruntime", "onnxruntime-int8")
EXPORT_RUNTIMES = ("openvino", *ONNX_RUNTIMES)  # the runtimes that run the ONNX exports, on the CPU only


def onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def openvino_available() -> bool:
    try:
        _import_openvino()
    except ImportError:
        return False
    return True


def _import_openvino():
    """The `openvino` module (its telemetry is blocked when `limis` is imported: `limis.privacy`)."""
    import openvino

    return openvino


def choose_runtime(runtime: str, device: str) -> str:
    """`auto` on CPU is openvino when it is installed, else onnxruntime when that is, else torch (always torch on GPU)."""
    if runtime not in RUNTIMES:
        raise LimisError(f"unknown runtime '{runtime}'; choose one of: {', '.join(RUNTIMES)}.")
    on_cpu = torch.device(device).type == "cpu"
    if runtime in ONNX_RUNTIMES and not onnxruntime_available():
        raise LimisError("the onnxruntime runtime is not installed: pip install 'limis[fast]' (or use --runtime torch).")
    if runtime == "openvino" and not openvino_available():
        raise LimisError("the openvino runtime is not installed: pip install 'limis[fast]' (or use --runtime torch).")
    if runtime in EXPORT_RUNTIMES and not on_cpu:
        raise LimisError(f"--runtime {runtime} runs on the CPU; use --device cpu or --runtime torch.")
    if runtime == "onnxruntime-int8" and not int8_validated_cpu():
        raise LimisError("--runtime onnxruntime-int8 keeps Dice within 0.005 of fp32 only on CPUs with VNNI; this CPU "
                         "has none (measured on such a CPU: spleen -0.0056, stomach -0.0054); use --runtime onnxruntime.")
    if runtime == "auto":
        if not on_cpu:
            return "torch"
        return "openvino" if openvino_available() else "onnxruntime" if onnxruntime_available() else "torch"
    return runtime


def int8_validated_cpu() -> bool:
    """True on CPUs with VNNI int8 dot products, where the int8 encoder passed the accuracy rule.

    Without VNNI (AVX2 only) onnxruntime's u8 x s8 kernel saturates: measured on an AMD EPYC (AVX2), the
    embedding error was 15% and two organs lost more than 0.005 Dice, also with 7-bit weights
    (evaluation/speed/RESULTS.md).
    """
    return torch.cpu._is_vnni_supported()


class OnnxEncoder:
    """Callable like the torch encoder: (B, 3, S, S) float32 tensor -> (B, C, S/4, S/4) float32 tensor.

    One session serves every caller (onnxruntime sessions may run concurrently from threads).
    """

    def __init__(self, session) -> None:
        self.session = session
        self.input_name = session.get_inputs()[0].name

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        images = batch.detach().float().cpu().numpy()
        outputs = [self.session.run(None, {self.input_name: image[None]})[0] for image in images]  # export has batch 1
        return torch.from_numpy(np.concatenate(outputs))


class OpenVinoEncoder:
    """Callable like the torch encoder: (B, 3, S, S) float32 tensor -> (B, C, S/4, S/4) float32 tensor.

    One compiled model serves every caller; each call takes its own infer request, so threads never share one.
    """

    def __init__(self, compiled) -> None:
        self.compiled = compiled

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        images = batch.detach().float().cpu().numpy()
        outputs = [self.compiled.create_infer_request().infer([image[None]])[0] for image in images]  # batch 1
        return torch.from_numpy(np.concatenate(outputs))


class OnnxMaskDecoder:
    """Callable like SAM's mask decoder with `multimask_output=False` (keyword arguments, (masks, iou) tensors out)."""

    def __init__(self, session) -> None:
        self.session = session

    def __call__(self, *, image_embeddings: torch.Tensor, image_pe: torch.Tensor, sparse_prompt_embeddings: torch.Tensor,
                 dense_prompt_embeddings: torch.Tensor, multimask_output: bool) -> tuple[torch.Tensor, torch.Tensor]:
        if multimask_output:
            raise ValueError("the decoder export gives one mask; three candidates come from the torch decoder")
        feeds = {"image_embeddings": image_embeddings, "image_pe": image_pe, "sparse": sparse_prompt_embeddings,
                 "dense": dense_prompt_embeddings}
        masks, iou = self.session.run(None, {k: v.detach().float().cpu().numpy() for k, v in feeds.items()})
        return torch.from_numpy(masks), torch.from_numpy(iou)


class OnnxBoxPrompt:
    """The prompt encoder for one box and nothing else: (1, 4) float32 box in input pixels -> sparse (1, 2, C) and
    dense (1, C, h, w) tensors. `image_pe` is the (1, C, h, w) positional encoding of the embedding grid."""

    def __init__(self, session) -> None:
        self.session = session
        self.image_pe = torch.from_numpy(self.session.run(["image_pe"], {"box": np.zeros((1, 4), np.float32)})[0])

    def __call__(self, box: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        sparse, dense = self.session.run(["sparse", "dense"], {"box": box.detach().float().cpu().numpy()})
        return torch.from_numpy(sparse), torch.from_numpy(dense)


class _SingleMask(torch.nn.Module):
    """The mask decoder with `multimask_output=False` fixed, in the positional form ONNX export needs."""

    def __init__(self, decoder: torch.nn.Module) -> None:
        super().__init__()
        self.decoder = decoder

    def forward(self, image_embeddings, image_pe, sparse, dense):
        return self.decoder(image_embeddings=image_embeddings, image_pe=image_pe, sparse_prompt_embeddings=sparse,
                            dense_prompt_embeddings=dense, multimask_output=False)


class _BoxPrompt(torch.nn.Module):
    """The prompt encoder for a (1, 4) box alone, and the grid's positional encoding, in the form ONNX export needs."""

    def __init__(self, prompt_encoder: torch.nn.Module) -> None:
        super().__init__()
        self.prompt_encoder = prompt_encoder

    def forward(self, box):
        sparse, dense = self.prompt_encoder(points=None, boxes=box, masks=None)
        return sparse, dense, self.prompt_encoder.get_dense_pe()


@dataclass(frozen=True)
class LiteMedSamExports:
    """The ONNX files of one LiteMedSAM checkpoint in the weights cache."""

    encoder: Path  # (1, 3, size, size) image -> (1, 256, size/4, size/4) embedding
    decoder: Path  # single-mask decoder, any number of prompt tokens
    box_prompt: Path  # (1, 4) box -> sparse, dense prompt embeddings, and the grid's positional encoding


def litemedsam_exports(model: Callable[[], torch.nn.Module], size: int, weights_path: str,
                       cache_dir: Path) -> LiteMedSamExports:
    """The exports of the checkpoint at `weights_path`; `model()` (the loaded torch model) is called only to write
    one that is missing."""
    from limis.weights import sha256_of

    sha = sha256_of(weights_path)
    exports = LiteMedSamExports(exported_encoder_path(sha, size, cache_dir), exported_decoder_path(sha, cache_dir),
                                exported_box_prompt_path(sha, cache_dir))
    if not exports.encoder.is_file():
        _export_once(model().image_encoder, (torch.zeros(1, 3, size, size),), exports.encoder, ["image"], ["embedding"], {})
    if not exports.decoder.is_file() or not exports.box_prompt.is_file():
        prompt_encoder = model().prompt_encoder
        box = torch.tensor([[8.0, 8.0, 64.0, 64.0]])
        with torch.no_grad():
            sparse, dense = prompt_encoder(points=None, boxes=box, masks=None)
            example = (torch.zeros(1, prompt_encoder.embed_dim, *prompt_encoder.image_embedding_size),
                       prompt_encoder.get_dense_pe(), sparse, dense)
        _export_once(_SingleMask(model().mask_decoder), example, exports.decoder,
                     ["image_embeddings", "image_pe", "sparse", "dense"], ["masks", "iou"], {"sparse": {1: "tokens"}})
        _export_once(_BoxPrompt(prompt_encoder), (box,), exports.box_prompt, ["box"], ["sparse", "dense", "image_pe"], {})
    return exports


def exported_encoder_path(weights_sha256: str, size: int, cache_dir: Path) -> Path:
    return cache_dir / "onnx" / f"litemedsam_encoder_{weights_sha256[:16]}_{size}.onnx"


def int8_encoder_path(fp32_export: Path) -> Path:
    return fp32_export.with_name(fp32_export.stem + "_int8dyn.onnx")


def exported_decoder_path(weights_sha256: str, cache_dir: Path) -> Path:
    return cache_dir / "onnx" / f"litemedsam_mask_decoder_{weights_sha256[:16]}.onnx"


def exported_box_prompt_path(weights_sha256: str, cache_dir: Path) -> Path:
    return cache_dir / "onnx" / f"litemedsam_box_prompt_{weights_sha256[:16]}.onnx"


def onnx_encoder(export: Path, int8: bool = False) -> OnnxEncoder:
    """The encoder export (optionally its int8 version) opened with onnxruntime's CPU provider."""
    return OnnxEncoder(_session(quantised_once(export) if int8 else export))


def openvino_encoder(export: Path) -> OpenVinoEncoder:
    """The encoder export compiled by OpenVINO for the CPU in fp32, on torch's thread count, threads not pinned
    (test workers and demo sessions share the cores)."""
    openvino = _import_openvino()
    core = openvino.Core()
    config = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": torch.get_num_threads(),
              "ENABLE_CPU_PINNING": False, "PERFORMANCE_HINT": "LATENCY"}
    return OpenVinoEncoder(core.compile_model(core.read_model(str(export)), "CPU", config))


def quantised_once(fp32_export: Path) -> Path:
    """The int8 encoder beside its fp32 export: MatMul weights per-channel int8, activations quantised at run time."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    path = int8_encoder_path(fp32_export)
    if path.is_file():
        return path
    with tempfile.TemporaryDirectory(dir=path.parent) as scratch, replaced_on_success(path) as partial:
        prepared = Path(scratch) / "prepared.onnx"  # shape-inferred input of the quantiser, removed afterwards
        quant_pre_process(str(fp32_export), str(prepared))
        quantize_dynamic(str(prepared), str(partial), op_types_to_quantize=["MatMul"], weight_type=QuantType.QInt8,
                         per_channel=True)
    return path


def onnx_mask_decoder(export: Path) -> OnnxMaskDecoder:
    return OnnxMaskDecoder(_session(export))


def onnx_box_prompt(export: Path) -> OnnxBoxPrompt:
    return OnnxBoxPrompt(_session(export))


def _export_once(module: torch.nn.Module, example: tuple, path: Path, inputs: list[str], outputs: list[str],
                 dynamic: dict) -> None:
    """Write the ONNX export to `path` unless it is there; a partial file never takes its place."""
    if path.is_file():
        return
    with replaced_on_success(path) as partial, warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer notes about shape asserts in TinyViT
        torch.onnx.export(module.eval(), example, str(partial), dynamo=False, input_names=inputs, output_names=outputs,
                          dynamic_axes=dynamic or None, opset_version=17)


def _session(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.enable_cpu_mem_arena = False  # the arena kept ~0.5 GB of peak activations resident for the whole run
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
