"""Image-encoder runtimes: torch eager, or onnxruntime fp32 on an ONNX export of the same weights.

The export is written once into the weights cache, keyed by the checkpoint's SHA-256 and the
input size, so later runs only open it. Embeddings equal torch's within 4e-6 (tested). The
prompt encoder and mask decoder stay in torch. OpenVINO was measured too (a little faster on
2 cores) but its Python package turns on usage telemetry at import unless the user opted out,
so LIMIS does not import it.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from limis.errors import LimisError

RUNTIMES = ("auto", "torch", "onnxruntime")


def onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def choose_runtime(runtime: str, device: str) -> str:
    """`auto` is onnxruntime on CPU when it is installed, torch otherwise (always torch on GPU)."""
    if runtime not in RUNTIMES:
        raise LimisError(f"unknown runtime '{runtime}'; choose one of: {', '.join(RUNTIMES)}.")
    on_cpu = torch.device(device).type == "cpu"
    if runtime == "onnxruntime" and not onnxruntime_available():
        raise LimisError("the onnxruntime runtime is not installed: pip install 'limis[fast]' (or use --runtime torch).")
    if runtime == "onnxruntime" and not on_cpu:
        raise LimisError("--runtime onnxruntime runs on the CPU; use --device cpu or --runtime torch.")
    if runtime == "auto":
        return "onnxruntime" if on_cpu and onnxruntime_available() else "torch"
    return runtime


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


def exported_encoder_path(weights_sha256: str, size: int, cache_dir: Path) -> Path:
    return cache_dir / "onnx" / f"litemedsam_encoder_{weights_sha256[:16]}_{size}.onnx"


def onnx_encoder(module: torch.nn.Module, size: int, weights_path: str, cache_dir: Path) -> OnnxEncoder:
    """Export `module` to ONNX (once per weights file, into `cache_dir`) and open it with onnxruntime's CPU provider."""
    import onnxruntime as ort

    from limis.weights import sha256_of

    path = exported_encoder_path(sha256_of(weights_path), size, cache_dir)
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        with warnings.catch_warnings(), torch.no_grad():  # tracer notes about shape asserts in TinyViT
            warnings.simplefilter("ignore")
            torch.onnx.export(module.eval(), (torch.zeros(1, 3, size, size),), str(partial), dynamo=False,
                              input_names=["image"], output_names=["embedding"], opset_version=17)
        partial.replace(path)
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    return OnnxEncoder(ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"]))
