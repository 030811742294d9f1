"""Segmenter for SAM-architecture models (image encoder + prompt encoder + mask decoder).

Serves LiteMedSAM (TinyViT, 256 px, inputs in [0, 1]) and Meta-format SAM / MedSAM ViT-B/L/H
(1024 px); the two differ only in input size and pixel normalisation.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from limis.segment.base import Embedding, Prompt, SegmentResult

IMAGENET_MEAN_255 = (123.675, 116.28, 103.53)
IMAGENET_STD_255 = (58.395, 57.12, 57.375)


@dataclass(frozen=True)
class SamInputSpec:
    """How a SAM-family model wants its pixels: square side and normalisation."""

    size: int
    normalisation: str  # "unit": [0, 1] as is (LiteMedSAM, MedSAM) | "imagenet": SAM's mean/std on 0..255


class SamFamilySegmenter:
    """Encode once (`embed`), decode per prompt (`segment`); state-free, so one instance serves many sessions."""

    def __init__(
        self,
        model: torch.nn.Module | Callable[[], torch.nn.Module],
        spec: SamInputSpec,
        name: str,
        device: str = "cpu",
        weights_path: str | None = None,
        encoder: Callable[[torch.Tensor], torch.Tensor] | None = None,
        runtime: str = "torch",
        mask_decoder: Callable | None = None,
        box_prompt: Callable | None = None,
    ) -> None:
        """`model` is the torch model, or a thread-safe function that loads it once (then it is loaded only when a
        part without a replacement is used); `encoder`, `mask_decoder` (single-mask calls) and `box_prompt` (the
        prompt encoder for a box alone, with an `image_pe` attribute) replace parts of it, e.g. by ONNX exports."""
        self._model = model.eval().to(device) if isinstance(model, torch.nn.Module) else model
        self.weights_path = weights_path
        self.spec = spec
        self.name = name
        self.device = torch.device(device)
        self.encoder = encoder or self.model.image_encoder
        self.mask_decoder = mask_decoder or self.model.mask_decoder
        self.box_prompt = box_prompt
        self.runtime = runtime
        if box_prompt is not None:
            self.image_pe = box_prompt.image_pe
        else:
            with torch.no_grad():  # (1, C, h, w) positional encoding of the embedding grid: fixed by the weights, and
                # contiguous (as computed it is a permuted view, which cost the onnxruntime decoder 35% of each call)
                self.image_pe = self.model.prompt_encoder.get_dense_pe().contiguous()

    @property
    def model(self) -> torch.nn.Module:
        """The torch model (loaded on first use when it was given as a loader)."""
        return self._model if isinstance(self._model, torch.nn.Module) else self._model().to(self.device)

    def _autocast(self):
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return nullcontext()

    def _input_size(self, original: tuple[int, int]) -> tuple[int, int]:
        scale = self.spec.size / max(original)
        return max(1, int(round(original[0] * scale))), max(1, int(round(original[1] * scale)))

    def _prepare(self, pixels: np.ndarray) -> tuple[torch.Tensor, tuple[int, int]]:
        """(3, S, S) tensor: resize longest side to S (bilinear), replicate to 3 channels, pad bottom/right."""
        image = torch.as_tensor(np.ascontiguousarray(pixels), dtype=torch.float32)[None, None]
        size = self._input_size(tuple(pixels.shape))
        image = F.interpolate(image, size=size, mode="bilinear", align_corners=False)[0].repeat(3, 1, 1)
        if self.spec.normalisation == "imagenet":
            mean = torch.tensor(IMAGENET_MEAN_255).view(3, 1, 1)
            std = torch.tensor(IMAGENET_STD_255).view(3, 1, 1)
            image = (image * 255.0 - mean) / std
        padded = torch.zeros(3, self.spec.size, self.spec.size)
        padded[:, : size[0], : size[1]] = image
        return padded, size

    @torch.inference_mode()
    def embed(self, slices: Sequence[np.ndarray]) -> list[Embedding]:
        """Encode displayed slices (float32 (rows, cols) in [0, 1]) in one batch."""
        if not slices:
            return []
        prepared = [self._prepare(np.asarray(s, dtype=np.float32)) for s in slices]
        batch = torch.stack([p[0] for p in prepared]).to(self.device)
        with self._autocast():
            features = self.encoder(batch).float()
        return [
            Embedding(features=features[i : i + 1], original_size=tuple(s.shape), input_size=prepared[i][1])
            for i, s in enumerate(slices)
        ]

    def _scale(self, embedding: Embedding) -> float:
        return self.spec.size / max(embedding.original_size)

    @torch.inference_mode()
    def segment(self, embedding: Embedding, prompts: Sequence[Prompt]) -> list[SegmentResult]:
        return [self._segment_one(embedding, prompt) for prompt in prompts]

    def _segment_one(self, embedding: Embedding, prompt: Prompt) -> SegmentResult:
        scale = self._scale(embedding)
        boxes = points = masks = None
        if prompt.box is not None:
            boxes = torch.tensor([prompt.box], dtype=torch.float32, device=self.device) * scale
        if len(prompt.points):
            coords = torch.as_tensor(np.asarray(prompt.points, dtype=np.float32) * scale, device=self.device)[None]
            labels = torch.as_tensor(np.asarray(prompt.point_labels, dtype=np.int64), device=self.device)[None]
            points = (coords, labels)
        if prompt.mask_logits is not None:
            masks = torch.as_tensor(prompt.mask_logits, dtype=torch.float32, device=self.device)[None, None]
        # One point alone is ambiguous (part or whole?): ask for SAM's three candidates.
        multimask = prompt.box is None and len(prompt.points) == 1 and masks is None
        if self.box_prompt is not None and boxes is not None and points is None and masks is None:
            sparse, dense = self.box_prompt(boxes)
        else:
            sparse, dense = self.model.prompt_encoder(points=points, boxes=boxes, masks=masks)
        decoder = self.model.mask_decoder if multimask else self.mask_decoder  # exports give one mask
        low_res, iou = decoder(
            image_embeddings=embedding.features,
            image_pe=self.image_pe,
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=multimask,
        )
        scores = iou[0].float().cpu().numpy()
        order = np.argsort(-scores)
        full = self._upscale(low_res[0], embedding)
        candidates = tuple((full[i] > 0.0, float(scores[i])) for i in order)
        best = int(order[0])
        return SegmentResult(
            mask=candidates[0][0],
            score=float(scores[best]),
            logits=low_res[0, best].float().cpu().numpy(),
            candidates=candidates,
        )

    def _upscale(self, low_res: torch.Tensor, embedding: Embedding) -> np.ndarray:
        """Low-res logits (C, h, w) -> logits on the displayed slice (C, rows, cols)."""
        logits = F.interpolate(low_res[None].float(), size=(self.spec.size, self.spec.size), mode="bilinear", align_corners=False)
        rows, cols = embedding.input_size
        logits = logits[..., :rows, :cols]
        logits = F.interpolate(logits, size=embedding.original_size, mode="bilinear", align_corners=False)
        return logits[0].cpu().numpy()
