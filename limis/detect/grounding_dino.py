"""Detector on transformers' Grounding DINO: canonical structures -> a label-list prompt -> boxes.

The prompt is Grounding DINO's own format, lower-case labels each followed by " ."
("kidney . liver ."). Every box is mapped back to one asked structure by the text the model
attached to it (exact words, then best word coverage), ties broken by the box's token scores.
Grounding DINO has no notion of patient sides; lateral structures are split by geometry downstream.
"""

from __future__ import annotations

import re
from contextlib import nullcontext
from typing import Any, Sequence

import numpy as np
import torch

from limis.detect.base import Detection, Detector, DetectorTraits
from limis.errors import LimisError
from limis.imaging.slice_image import Box, SliceImage
from limis.weights import load_transformers_model

DEFAULT_MODEL = "IDEA-Research/grounding-dino-tiny"


def structure_label(name: str) -> str:
    """Lower-case text label for a canonical structure, without dots (they separate labels in the prompt)."""
    try:
        from limis.vocab import display_name

        text = display_name(name)
    except (ImportError, LimisError, KeyError, ValueError):  # vocabulary missing or name unknown to it
        text = name.replace("_", " ")
    return " ".join(text.lower().replace(".", " ").split())


def label_prompt(labels: Sequence[str]) -> str:
    """Grounding DINO's label-list text: "kidney left . liver ."."""
    return " ".join(f"{label} ." for label in labels)


def _words(text: str, ignore: Sequence[str] = ()) -> tuple[str, ...]:
    """Lower-case word tokens of a label or decoded phrase, special tokens such as [SEP] removed."""
    for token in ignore:
        text = text.replace(token, " ")
    return tuple(re.findall(r"[^\W_]+", text.lower()))


def _display_box(box: Sequence[float], shape: tuple[int, int]) -> Box:
    """Model box (continuous pixel edges, XYXY) -> LIMIS box (pixel-centre indices, XYXY) clipped to the slice.

    Pixel i spans edges [i, i + 1), so the first covered pixel is the left edge and the last one
    is the right edge minus one (the inverse of the training targets' `normalised_cxcywh`).
    """
    rows, cols = shape
    x1, y1, x2, y2 = float(box[0]), float(box[1]), float(box[2]) - 1.0, float(box[3]) - 1.0
    return (
        float(np.clip(x1, 0, cols - 1)),
        float(np.clip(y1, 0, rows - 1)),
        float(np.clip(x2, 0, cols - 1)),
        float(np.clip(y2, 0, rows - 1)),
    )


class GroundingDinoDetector(Detector):
    """Open-vocabulary boxes for canonical structures on displayed slices; holds no per-image state."""

    name = "grounding-dino"
    traits = DetectorTraits(understands_laterality=False)  # it sees a flipped radiological image: no patient sides

    def __init__(
        self,
        model: Any,
        processor: Any,
        device: str = "cpu",
        box_threshold: float = 0.25,
        text_threshold: float = 0.25,
        batch_size: int = 8,
        weights_path: str | None = None,
    ) -> None:
        self.model = model.eval().to(device)
        self.processor = processor
        self.device = torch.device(device)
        self.box_threshold = box_threshold
        self.text_threshold = text_threshold
        self.batch_size = max(1, batch_size)
        self.weights_path = weights_path

    @classmethod
    def from_pretrained(
        cls,
        name_or_dir: str = DEFAULT_MODEL,
        device: str = "cpu",
        box_threshold: float = 0.25,
        text_threshold: float = 0.25,
        batch_size: int = 8,
    ) -> "GroundingDinoDetector":
        """Load model and processor from a save_pretrained folder or a cached hub id; never downloads offline.

        Raises `WeightsNotFoundError` (one line, saying where to put the files) when nothing loadable is
        found, `LimisError` when the folder holds another architecture or an incomplete checkpoint.
        """
        from transformers import AutoProcessor, GroundingDinoForObjectDetection

        model, processor = load_transformers_model(
            GroundingDinoForObjectDetection, AutoProcessor, name_or_dir, "grounding-dino", "Grounding DINO", "--detector-weights"
        )
        options = {"box_threshold": box_threshold, "text_threshold": text_threshold, "batch_size": batch_size}
        return cls(model, processor, device=device, weights_path=name_or_dir, **options)

    def detect(self, image: SliceImage, structures: Sequence[str]) -> list[Detection]:
        """All boxes (XYXY display pixels) answering any of `structures`, best first."""
        return self.detect_batch([image], structures)[0]

    def detect_batch(self, images: Sequence[SliceImage], structures: Sequence[str]) -> list[list[Detection]]:
        """`detect` for several slices, `batch_size` slices per forward pass; one list per image, in order."""
        found: list[list[Detection]] = [[] for _ in images]
        targets: dict[str, str] = {}  # label -> structure; the first structure asked wins a shared label
        for structure in structures:
            targets.setdefault(structure_label(structure), structure)
        labels = list(targets)
        for chunk in self._prompt_chunks(labels):
            for start in range(0, len(images), self.batch_size):
                batch = images[start : start + self.batch_size]
                for i, detections in enumerate(self._run(batch, chunk, [targets[label] for label in chunk])):
                    found[start + i].extend(detections)
        return [sorted(d, key=lambda det: -det.score) for d in found]

    def _prompt_chunks(self, labels: list[str]) -> list[list[str]]:
        """Labels split so each prompt fits the model's text length (256 tokens); later tokens would be cut off."""
        budget = int(self.model.config.max_text_len) - 2  # [CLS] and [SEP]
        chunks: list[list[str]] = []
        used = budget + 1
        for label in labels:
            cost = len(self.processor.tokenizer(label_prompt([label]), add_special_tokens=False)["input_ids"])
            if used + cost > budget:
                chunks.append([])
                used = 0
            chunks[-1].append(label)
            used += cost
        return chunks

    def _autocast(self):
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return nullcontext()

    @torch.inference_mode()
    def _run(self, images: Sequence[SliceImage], labels: list[str], structures: list[str]) -> list[list[Detection]]:
        """One forward pass: every image with the same label-list prompt; detections per image."""
        prompt = label_prompt(labels)
        # Windowed [0, 1] slices become 3-channel 0..255 images, the scale the processor rescales from.
        pixels = [torch.as_tensor(np.asarray(im.pixels, dtype=np.float32) * 255.0).repeat(3, 1, 1) for im in images]
        inputs = self.processor(images=pixels, text=[prompt] * len(images), return_tensors="pt").to(self.device)
        with self._autocast():
            outputs = self.model(**inputs)
        outputs.logits, outputs.pred_boxes = outputs.logits.float(), outputs.pred_boxes.float()
        shapes = [tuple(im.pixels.shape) for im in images]
        results = self.processor.post_process_grounded_object_detection(
            outputs,
            input_ids=inputs["input_ids"],
            threshold=self.box_threshold,
            text_threshold=self.text_threshold,
            target_sizes=shapes,
        )
        probs = outputs.logits.sigmoid()  # (B, queries, max_text_len) token scores
        kept = [p[p.max(dim=-1).values > self.box_threshold] for p in probs]  # same rows, same order as results
        spans = self._label_spans(prompt, labels)
        return [
            self._detections(result, kept_probs, labels, structures, spans, shape)
            for result, kept_probs, shape in zip(results, kept, shapes, strict=True)
        ]

    def _label_spans(self, prompt: str, labels: list[str]) -> list[list[int]]:
        """Token positions of each label inside the tokenised prompt (from the fast tokenizer's offsets)."""
        offsets = self.processor.tokenizer(prompt, return_offsets_mapping=True)["offset_mapping"]
        spans, start = [], 0
        for label in labels:
            end = start + len(label)
            spans.append([t for t, (a, b) in enumerate(offsets) if b > a and a >= start and b <= end])
            start = end + len(" . ")
        return spans

    def _detections(
        self,
        result: dict,
        probs: torch.Tensor,
        labels: list[str],
        structures: list[str],
        spans: list[list[int]],
        shape: tuple[int, int],
    ) -> list[Detection]:
        """Post-processed boxes of one image as Detections; `probs` is (kept boxes, max_text_len)."""
        detections = []
        rows = zip(result["scores"], result["boxes"], result["text_labels"], strict=True)
        for k, (score, box, text) in enumerate(rows):
            span_scores = [float(probs[k, span].max()) if span else 0.0 for span in spans]
            index = self._match(text, labels, span_scores)
            box_xyxy = _display_box(box.tolist(), shape)
            detections.append(Detection(structures[index], box_xyxy, float(score), labels[index]))
        return detections

    def _match(self, text: str, labels: list[str], span_scores: list[float]) -> int:
        """Index of the label a box's decoded text names: exact words, else the label whose words it covers best.

        Coverage is the share of the label's words found in the text, so a text spanning several labels
        ("left kidney. liver.") ties them all; ties, and texts sharing no word, go to the best token score.
        """
        words = _words(text, self.processor.tokenizer.all_special_tokens)
        label_words = [_words(label) for label in labels]
        if words in label_words:
            return label_words.index(words)
        coverage = [len(set(words) & set(lw)) / max(1, len(set(lw))) for lw in label_words]
        tied = [i for i, c in enumerate(coverage) if c == max(coverage)]
        return max(tied, key=lambda i: span_scores[i])
