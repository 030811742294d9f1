"""Reduced precision (int8, bf16) and engines per LiteMedSAM component, decided on real slices: embeddings,
box-prompt masks and speed against fp32.

Usage: python evaluation/speed/encoder_precision.py OUT_DIR [SELECTION]   (variants whose 'component: variant' name
contains SELECTION, e.g. encoder, decoder, OpenVINO or 'encoder: dynamic int8 MatMul,'; default all)
Calibration slices (static variants): every 16th slice of 8 BTCV patients of folds 1-3. Evaluation: every 6th
slice of the 6 BTCV fold-0 patients, each organ with its reference box. For each variant: relative embedding
error, per organ the mean change of Dice against the reference (variant minus fp32) and the mean Dice between the
variant's and fp32 masks, and the median seconds per call (interleaved, the session's threads). Writes
precision.json. The fp32 reference is onnxruntime's encoder, equal to torch's within 4e-6.
Research data (BTCV): read from ../shared/data, never copied.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_dynamic,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from limis.eval.cases import load_case
from limis.eval.datasets import load_manifest
from limis.imaging.display import Plane, display_slice
from limis.imaging.overlap import dice
from limis.imaging.slice_image import box_from_mask
from limis.pipeline.slices import choose_window, slice_image
from limis.segment.base import Prompt
from limis.segment.builders import build_litemedsam
from limis.segment.runtime import (
    OnnxEncoder,
    OnnxMaskDecoder,
    OpenVinoEncoder,
    _import_openvino,
    _session,
    exported_decoder_path,
    exported_encoder_path,
)
from limis.vocab import label_ids
from limis.weights import sha256_of, weights_dir

ORGANS = ("liver", "spleen", "kidney_left", "kidney_right", "stomach", "pancreas", "aorta")
MANIFEST = Path(__file__).resolve().parents[1] / "datasets" / "btcv_abdomen_ct.yaml"


def slices(manifest, cases, every: int):
    """(windowed pixels, {organ: (reference box, reference mask)}) of every `every`-th axial slice."""
    for case in cases:
        volume, labels, names = load_case(case, manifest)
        window = choose_window(volume)
        for k in range(0, volume.shape[2], every):
            pixels = slice_image(volume, Plane.AXIAL, k, window).pixels
            reference = display_slice(labels, Plane.AXIAL, k)
            organs = {o: np.isin(reference, label_ids(o, names)) for o in ORGANS}
            yield pixels, {o: (box_from_mask(m), m) for o, m in organs.items() if m.any()}


def main(out: Path, only: str | None = None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    segmenter = build_litemedsam(runtime="onnxruntime")
    manifest = load_manifest(MANIFEST)
    calibration = [p for p, _ in slices(manifest, [c for c in manifest.cases if c.split != "fold0"][:8], 16)][:40]
    evaluation = list(slices(manifest, [c for c in manifest.cases if c.split == "fold0"], 6))
    sha = sha256_of(segmenter.weights_path)
    encoder_fp32, decoder_fp32 = exported_encoder_path(sha, 256, weights_dir()), exported_decoder_path(sha, weights_dir())

    class Calibration(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter([{"image": segmenter._prepare(p)[0][None].numpy()} for p in calibration])

        def get_next(self):
            return next(self.items, None)

    def prepared(path: Path) -> Path:
        target = out / f"{path.stem}_prepared.onnx"
        if not target.exists():
            quant_pre_process(str(path), str(target))
        return target

    static = dict(quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,
                  weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax)
    recipes = {  # component, variant -> writer
        ("encoder", "dynamic int8 MatMul, 7-bit weight range (tried for CPUs without VNNI)"):
            lambda src, dst: quantize_dynamic(src, dst, op_types_to_quantize=["MatMul"], weight_type=QuantType.QInt8,
                                              per_channel=True, reduce_range=True),
        ("encoder", "dynamic int8 MatMul, full weight range (shipped as onnxruntime-int8, VNNI CPUs only)"):
            lambda src, dst: quantize_dynamic(src, dst, op_types_to_quantize=["MatMul"], weight_type=QuantType.QInt8,
                                              per_channel=True),
        ("encoder", "dynamic int8 MatMul + Conv"): lambda src, dst: quantize_dynamic(
            src, dst, op_types_to_quantize=["MatMul", "Conv"], weight_type=QuantType.QInt8, per_channel=True),
        ("encoder", "static int8 Conv (calibrated)"): lambda src, dst: quantize_static(
            src, dst, Calibration(), op_types_to_quantize=["Conv"], **static),
        ("encoder", "static int8 Conv + MatMul (calibrated)"): lambda src, dst: quantize_static(
            src, dst, Calibration(), op_types_to_quantize=["Conv", "MatMul"], **static),
        ("decoder", "dynamic int8 MatMul"): lambda src, dst: quantize_dynamic(
            src, dst, op_types_to_quantize=["MatMul"], weight_type=QuantType.QInt8, per_channel=True),
    }
    openvino_precisions = {("encoder", "OpenVINO fp32 (shipped as openvino)"): "f32",
                           ("encoder", "OpenVINO bf16 (CPUs with native bf16, e.g. AMX)"): "bf16"}
    reference = []
    for pixels, organs in evaluation:
        embedding = segmenter.embed([pixels])[0]
        reference.append((embedding, {o: segmenter.segment(embedding, [Prompt(box=b)])[0].mask for o, (b, _) in organs.items()}))
    fp32_encoder, fp32_decoder = segmenter.encoder, segmenter.mask_decoder
    results, timers = {}, {("encoder", "fp32"): fp32_encoder}
    variants = {**recipes, **openvino_precisions}
    for number, ((component, variant), made_by) in enumerate(variants.items()):
        if only and only not in f"{component}: {variant}":
            continue
        if isinstance(made_by, str):  # an OpenVINO precision of the fp32 encoder export
            openvino = _import_openvino().Core()
            runner = OpenVinoEncoder(openvino.compile_model(openvino.read_model(str(encoder_fp32)), "CPU", {
                "INFERENCE_PRECISION_HINT": made_by, "INFERENCE_NUM_THREADS": torch.get_num_threads()}))
        else:
            source = encoder_fp32 if component == "encoder" else decoder_fp32
            path = out / f"{component}_{number}.onnx"
            if not path.exists():
                made_by(str(prepared(source)), str(path))
            session = _session(path)
            runner = OnnxEncoder(session) if component == "encoder" else OnnxMaskDecoder(session)
        changes = {o: [] for o in ORGANS}
        agreement = {o: [] for o in ORGANS}
        errors = []
        for (pixels, organs), (embedding, masks) in zip(evaluation, reference):
            if component == "encoder":
                segmenter.encoder = runner
                candidate = segmenter.embed([pixels])[0]
                errors.append(float(torch.linalg.norm(candidate.features - embedding.features)
                                    / torch.linalg.norm(embedding.features)))
            else:
                candidate = embedding
            decoder = runner if component == "decoder" else None
            for organ, (box, truth) in organs.items():
                if decoder is not None:
                    segmenter.mask_decoder = decoder
                mask = segmenter.segment(candidate, [Prompt(box=box)])[0].mask
                changes[organ].append(dice(mask, truth) - dice(masks[organ], truth))
                agreement[organ].append(dice(mask, masks[organ]))
        segmenter.encoder, segmenter.mask_decoder = fp32_encoder, fp32_decoder
        worst = max(abs(float(np.mean(v))) for v in changes.values() if v)
        results[f"{component}: {variant}"] = {
            "embedding_relative_error": float(np.mean(errors)) if errors else None,
            "dice_change_vs_fp32_per_organ": {o: round(float(np.mean(v)), 4) for o, v in changes.items() if v},
            "mask_dice_vs_fp32_per_organ": {o: round(float(np.mean(v)), 4) for o, v in agreement.items() if v},
            "slices_per_organ": {o: len(v) for o, v in changes.items() if v},
            "worst_organ_mean_change": round(worst, 4), "accepted (<= 0.005)": worst <= 0.005,
        }
        timers[(component, variant)] = runner
        print(json.dumps({f"{component}: {variant}": results[f"{component}: {variant}"]}), flush=True)
    results["seconds_per_call"] = timing(segmenter, evaluation[0][0], timers, decoder_fp32)
    results["threads"] = torch.get_num_threads()
    (out / "precision.json").write_text(json.dumps(results, indent=1))
    print(json.dumps(results["seconds_per_call"], indent=1))


def timing(segmenter, pixels, runners, decoder_fp32) -> dict[str, float]:
    """Median seconds of 8 interleaved calls per encoder / decoder variant (`runners`: callables by variant)."""
    image = segmenter._prepare(pixels)[0][None]
    embedding = segmenter.embed([pixels])[0]
    box = (10.0, 10.0, 120.0, 120.0)
    calls = {}
    for (component, variant), runner in runners.items():
        if component == "encoder":
            calls[f"encoder: {variant}"] = lambda e=runner: e(image)
        else:
            calls[f"decoder: {variant}"] = lambda d=runner: _decode(segmenter, d, embedding, box)
    fp32 = OnnxMaskDecoder(_session(decoder_fp32))
    calls["decoder: fp32"] = lambda: _decode(segmenter, fp32, embedding, box)
    times = {name: [] for name in calls}
    for _ in range(8):
        for name, call in calls.items():
            began = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - began)
    return {name: round(float(np.median(v)), 4) for name, v in times.items()}


def _decode(segmenter, decoder, embedding, box):
    segmenter.mask_decoder = decoder
    return segmenter.segment(embedding, [Prompt(box=box)])


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else None)
