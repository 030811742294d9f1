"""Segmenter on transformers' `SamModel` (facebook/sam-vit-*, wanglab/medsam-vit-base, local folders).

Pixels go through the checkpoint's own image processor (rescale 0..255 -> [0, 1], its mean/std,
resize the longest side to the model's input size, pad bottom/right); prompts are scaled here
with the same per-axis factors, so boxes and points land on the pixels they were drawn on.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from limis.segment.base import Embedding, Prompt, SegmentResult
from limis.weights import load_transformers_model

DEFAULT_MODEL = "facebook/sam-vit-base"


class HFSamSegmenter:
    """Encode once (`embed`), decode per prompt (`segment`); holds no per-image state."""

    name = "hf-sam"

    def __init__(self, model: Any, image_processor: Any, device: str = "cpu", weights_path: str | None = None) -> None:
        self.model = model.eval().to(device)
        self.image_processor = image_processor
        self.device = torch.device(device)
        self.weights_path = weights_path

    @classmethod
    def from_pretrained(cls, name_or_dir: str = DEFAULT_MODEL, device: str = "cpu") -> "HFSamSegmenter":
        """Load model and image processor from a save_pretrained folder or a cached hub id; never downloads offline.

        Raises `WeightsNotFoundError` (one line, saying where to put the files) when nothing loadable is
        found, `LimisError` when the folder holds another architecture or an incomplete checkpoint.
        """
        from transformers import AutoImageProcessor, SamModel

        model, processor = load_transformers_model(
            SamModel, AutoImageProcessor, name_or_dir, "sam", "SAM", "--weights with --segmenter hf-sam"
        )
        return cls(model, processor, device=device, weights_path=name_or_dir)

    @property
    def pixel_size(self) -> int:
        """Side of the square image the vision encoder takes (1024 for released SAM/MedSAM)."""
        return int(self.model.config.vision_config.image_size)

    @property
    def prompt_size(self) -> int:
        """Side of the square frame the prompt encoder normalises coordinates by (equals pixel_size in practice)."""
        return int(self.model.config.prompt_encoder_config.image_size)

    def _autocast(self):
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return nullcontext()

    def _pixel_values(self, slices: Sequence[np.ndarray]) -> tuple[torch.Tensor, list[tuple[int, int]]]:
        """(B, 3, S, S) normalised, padded pixels and each slice's resized (rows, cols) before padding.

        Each slice is float32 (rows, cols) in [0, 1]; it is replicated to 3 channels on a 0..255 scale
        because the processor rescales by 1/255 before applying its mean/std.
        """
        images = [torch.as_tensor(np.asarray(s, dtype=np.float32) * 255.0).repeat(3, 1, 1) for s in slices]
        side = self.pixel_size
        batch = self.image_processor(
            images=images,
            size={"longest_edge": side},
            pad_size={"height": side, "width": side},
            input_data_format="channels_first",
            return_tensors="pt",
        )
        sizes = [(int(r), int(c)) for r, c in batch["reshaped_input_sizes"]]
        return batch["pixel_values"], sizes

    @torch.inference_mode()
    def embed(self, slices: Sequence[np.ndarray]) -> list[Embedding]:
        """Encode displayed slices (float32 (rows, cols) in [0, 1]) in one batch; features are (1, C, h, w) each."""
        if not slices:
            return []
        pixels, sizes = self._pixel_values(slices)
        with self._autocast():
            features = self.model.get_image_embeddings(pixels.to(self.device)).float()
        return [
            Embedding(features=features[i : i + 1], original_size=tuple(np.shape(s)), input_size=sizes[i])
            for i, s in enumerate(slices)
        ]

    @torch.inference_mode()
    def segment(self, embedding: Embedding, prompts: Sequence[Prompt]) -> list[SegmentResult]:
        """One result per prompt on one embedded slice; masks are bool (rows, cols) of the displayed slice."""
        return [self._segment_one(embedding, prompt) for prompt in prompts]

    def _prompt_scale(self, embedding: Embedding) -> np.ndarray:
        """Per-axis (x, y) factors from display pixels to the prompt encoder's frame, matching the pixel resize."""
        rows, cols = embedding.original_size
        in_rows, in_cols = embedding.input_size
        frame = self.prompt_size / self.pixel_size
        return np.array([in_cols / cols, in_rows / rows], dtype=np.float32) * frame

    def _prompt_inputs(self, embedding: Embedding, prompt: Prompt) -> dict[str, torch.Tensor]:
        """SamModel keyword tensors: boxes (1, 1, 4), points (1, 1, N, 2), labels (1, 1, N), masks (1, 1, h, w)."""
        scale = self._prompt_scale(embedding)
        inputs: dict[str, torch.Tensor] = {}
        if prompt.box is not None:
            box = np.asarray(prompt.box, dtype=np.float32) * np.tile(scale, 2)
            inputs["input_boxes"] = torch.as_tensor(box, device=self.device).view(1, 1, 4)
        if len(prompt.points):
            points = np.asarray(prompt.points, dtype=np.float32).reshape(-1, 2) * scale
            labels = np.asarray(prompt.point_labels, dtype=np.int64).reshape(-1)
            inputs["input_points"] = torch.as_tensor(points, device=self.device)[None, None]
            inputs["input_labels"] = torch.as_tensor(labels, device=self.device)[None, None]
        if prompt.mask_logits is not None:
            inputs["input_masks"] = self._mask_input(prompt.mask_logits, embedding)
        return inputs

    def _mask_input(self, logits: np.ndarray, embedding: Embedding) -> torch.Tensor:
        """Previous low-res logits as the (1, 1, 4h, 4w) dense prompt the mask embedding expects."""
        mask = torch.as_tensor(np.asarray(logits, dtype=np.float32), device=self.device)[None, None]
        expected = tuple(4 * n for n in embedding.features.shape[-2:])
        if tuple(mask.shape[-2:]) != expected:
            mask = F.interpolate(mask, size=expected, mode="bilinear", align_corners=False)
        return mask

    def _segment_one(self, embedding: Embedding, prompt: Prompt) -> SegmentResult:
        inputs = self._prompt_inputs(embedding, prompt)
        # One point alone is ambiguous (part or whole?): ask for SAM's three candidates.
        multimask = prompt.box is None and len(prompt.points) == 1 and prompt.mask_logits is None
        with self._autocast():
            output = self.model(image_embeddings=embedding.features, multimask_output=multimask, **inputs)
        low_res = output.pred_masks[0, 0].float()  # (C, 4h, 4w) in the padded square frame
        scores = output.iou_scores[0, 0].float().cpu().numpy()
        order = np.argsort(-scores, kind="stable")
        full = self._upscale(low_res, embedding)
        candidates = tuple((full[i] > 0.0, float(scores[i])) for i in order)
        best = int(order[0])
        return SegmentResult(
            mask=candidates[0][0],
            score=float(scores[best]),
            logits=low_res[best].cpu().numpy(),
            candidates=candidates,
        )

    def _upscale(self, low_res: torch.Tensor, embedding: Embedding) -> np.ndarray:
        """Low-res logits (C, h, w) -> logits on the displayed slice (C, rows, cols): unpad, then resize."""
        side = self.pixel_size
        logits = F.interpolate(low_res[None], size=(side, side), mode="bilinear", align_corners=False)
        rows, cols = embedding.input_size
        logits = logits[..., :rows, :cols]
        logits = F.interpolate(logits, size=embedding.original_size, mode="bilinear", align_corners=False)
        return logits[0].cpu().numpy()
