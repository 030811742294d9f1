"""lite-grounding: text -> boxes from a small head on the FROZEN LiteMedSAM image encoder.

The slice is put on a physical-size canvas (3 mm pixels, body centred; see `canvas.py`) and
encoded by LiteMedSAM's TinyViT. A small convolutional head turns the (256, 64, 64) embedding
plus body-relative coordinates into per-pixel features; a structure's MiniLM text embedding
becomes a query whose dot product with those features is a coarse heatmap. Connected regions of
the heatmap give boxes; their peak probability is the score, so "not present" is a low peak.

Paired structures are learned side-free ("kidney"): the pipeline picks the patient's side
from image geometry, never from where a side sat on the training screens.
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch import nn

from limis.detect.base import Detection, SliceImage
from limis.detect.canvas import CANVAS_MM, CANVAS_SIZE, CanvasMap, estimated_pixel_mm, make_canvas
from limis.errors import LimisError, WeightsNotFoundError

WEIGHTS_FILE = "lite_grounding.safetensors"
GRID = 64  # LiteMedSAM embedding side
TEXT_DIM = 384  # MiniLM-L6 sentence embedding


def default_weights() -> Path:
    """The head shipped inside the package (trained by `limis train lite-grounding`)."""
    return Path(__file__).resolve().parent / "weights" / WEIGHTS_FILE


def concept_of(structure: str) -> str:
    """The side-free concept a structure is detected as ("kidney_left" -> "kidney"; "kidney" stays)."""
    from limis.vocab import all_structures

    return next((s.base for s in all_structures() if s.name == structure), structure)


def concept_text(concept: str) -> str:
    """The phrase whose sentence embedding conditions the head ("inferior_vena_cava" -> "inferior vena cava")."""
    return concept.replace("_", " ")


def coordinate_channels(body: tuple[float, float, float, float], size: int = CANVAS_SIZE, grid: int = GRID) -> torch.Tensor:
    """(4, grid, grid): canvas position of each cell (mm from the body centre / 384 mm) and body-relative position."""
    centres = (torch.arange(grid, dtype=torch.float32) + 0.5) * (size / grid) - 0.5
    rows, cols = torch.meshgrid(centres, centres, indexing="ij")
    half = (size - 1) / 2.0
    r0, c0, r1, c1 = body
    body_rows = (rows - (r0 + r1) / 2.0) / max((r1 - r0) / 2.0, 1.0)
    body_cols = (cols - (c0 + c1) / 2.0) / max((c1 - c0) / 2.0, 1.0)
    return torch.stack([(rows - half) / half, (cols - half) / half, body_rows.clamp(-2, 2), body_cols.clamp(-2, 2)])


class GroundingHead(nn.Module):
    """(B, 256, 64, 64) embeddings + (B, 4, 64, 64) coordinates + (C, 384) text -> (B, 1 + C, 64, 64) logits.

    Channel 0 is background; a softmax over channels gives each cell's probability of lying in
    each asked concept (labelmaps are exclusive, so concepts compete for a cell).
    """

    def __init__(self, embed_dim: int = 256, text_dim: int = TEXT_DIM, width: int = 96) -> None:
        super().__init__()
        self.width = width
        self.reduce = nn.Sequential(nn.Conv2d(embed_dim + 4, width, 1), nn.GroupNorm(8, width), nn.GELU())
        self.local = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.GroupNorm(8, width), nn.GELU())
        self.context = nn.Sequential(  # 32 x 32 with dilations: sees most of the body from every cell
            nn.Conv2d(width, width, 3, stride=2, padding=1), nn.GroupNorm(8, width), nn.GELU(),
            nn.Conv2d(width, width, 3, padding=2, dilation=2), nn.GroupNorm(8, width), nn.GELU(),
            nn.Conv2d(width, width, 3, padding=4, dilation=4), nn.GroupNorm(8, width), nn.GELU(),
        )
        self.fuse = nn.Conv2d(2 * width, width, 1)
        self.query = nn.Sequential(nn.Linear(text_dim, width), nn.GELU(), nn.Linear(width, width + 1))
        self.background = nn.Parameter(torch.zeros(width + 1))

    def features(self, embeddings: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        reduced = self.reduce(torch.cat([embeddings, coords], dim=1))
        local = self.local(reduced)
        context = F.interpolate(self.context(reduced), size=local.shape[-2:], mode="bilinear", align_corners=False)
        return self.fuse(torch.cat([local, context], dim=1))

    def forward(self, embeddings: torch.Tensor, coords: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        features = self.features(embeddings, coords)
        query = torch.cat([self.background[None], self.query(text)])
        weights, bias = query[:, :-1], query[:, -1]
        return torch.einsum("bwhx,cw->bchx", features, weights) / math.sqrt(self.width) + bias[None, :, None, None]


@dataclass(frozen=True)
class HeadConfig:
    width: int = 96
    canvas_mm: float = CANVAS_MM
    region_threshold: float = 0.35  # heatmap probability that outlines a region (cells half covered sit near 0.5)
    presence_threshold: float = 0.5  # a region counts only if its peak probability reaches this
    min_region_mm2: float = 100.0  # smaller regions are noise


class LiteGroundingModel:
    """The trained head with its text-embedding table and the encoder it was trained on."""

    def __init__(self, head: GroundingHead, text_table: dict[str, torch.Tensor], config: HeadConfig,
                 metadata: dict, weights_path: str | None = None) -> None:
        self.head = head.eval()
        self.text_table = text_table
        self.config = config
        self.metadata = metadata
        self.weights_path = weights_path

    def text(self, concepts: Sequence[str]) -> torch.Tensor:
        """(C, 384) embeddings; concepts outside the stored table are encoded with MiniLM."""
        missing = [c for c in concepts if c not in self.text_table]
        if missing:
            from limis.text.matcher import shared_matcher

            vectors = shared_matcher().encoder.encode([concept_text(c) for c in missing])
            self.text_table.update({c: torch.as_tensor(v) for c, v in zip(missing, vectors)})
        return torch.stack([self.text_table[c] for c in concepts])

    def save(self, path: str | Path) -> Path:
        from safetensors.torch import save_file

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {f"head.{k}": v.detach().cpu().contiguous() for k, v in self.head.state_dict().items()}
        concepts = sorted(self.text_table)
        tensors["text_table"] = torch.stack([self.text_table[c] for c in concepts]).contiguous()
        meta = {"config": json.dumps(self.config.__dict__), "concepts": json.dumps(concepts),
                "metadata": json.dumps(self.metadata)}
        save_file(tensors, str(path), metadata=meta)
        return path

    @classmethod
    def load(cls, path: str | Path | None = None) -> "LiteGroundingModel":
        """Strict load of a head file; a missing or foreign file gives one actionable error."""
        from safetensors import SafetensorError
        from safetensors.torch import safe_open

        path = Path(path) if path else default_weights()
        if not path.is_file():
            raise WeightsNotFoundError(f"no lite-grounding head at {path}; train one with `limis train lite-grounding` "
                                       "or pass --detector-weights PATH.")
        try:
            with safe_open(str(path), framework="pt") as handle:
                meta = handle.metadata() or {}
                tensors = {k: handle.get_tensor(k) for k in handle.keys()}
            config = HeadConfig(**json.loads(meta["config"]))
            concepts = json.loads(meta["concepts"])
        except (SafetensorError, KeyError, json.JSONDecodeError, OSError) as error:
            raise LimisError(f"{path} is not a lite-grounding head file ({type(error).__name__}); "
                             "give a file written by `limis train lite-grounding`.") from error
        head = GroundingHead(width=config.width)
        state = {k[len("head."):]: v for k, v in tensors.items() if k.startswith("head.")}
        try:
            head.load_state_dict(state, strict=True)
        except RuntimeError as error:
            raise LimisError(f"{path}: head weights do not match this LIMIS version's architecture; retrain it.") from error
        table = dict(zip(concepts, tensors["text_table"]))
        return cls(head, table, config, json.loads(meta.get("metadata", "{}")), str(path))


def _pixel_mm(image: SliceImage) -> tuple[float, float]:
    """The slice's pixel size, or an estimate from the trunk width when the picture carried none."""
    return image.geometry.pixel_spacing_mm if image.spacing_known else estimated_pixel_mm(image.pixels)


class LiteGroundingDetector:
    """Detector backend: canvases -> frozen LiteMedSAM embeddings -> head -> boxes on the displayed slice."""

    name = "lite-grounding"
    understands_laterality = False
    coarse_boxes = True  # boxes come from a 12 mm heatmap: the pipeline tightens them with the segmenter

    def __init__(self, model: LiteGroundingModel, encoder, cached_slices: int = 256) -> None:
        self.model = model
        self.encoder = encoder
        self.cached_slices = cached_slices
        self._embedded: OrderedDict[tuple, tuple[torch.Tensor, CanvasMap]] = OrderedDict()

    @classmethod
    def from_file(cls, path: str | Path | None = None, device: str = "cpu", encoder=None) -> "LiteGroundingDetector":
        """Load a head and the LiteMedSAM encoder it was trained on (checked by SHA-256 when recorded)."""
        from limis.segment.builders import build_litemedsam
        from limis.weights import sha256_of

        model = LiteGroundingModel.load(path)
        encoder = encoder or build_litemedsam(device=device)
        expected = model.metadata.get("encoder_sha256")
        if expected and encoder.weights_path and sha256_of(encoder.weights_path) != expected:
            raise LimisError(f"the lite-grounding head {model.weights_path} was trained on another LiteMedSAM encoder; "
                             "use the shipped lite_medsam.pth or retrain the head.")
        return cls(model, encoder)

    def detect(self, image: SliceImage, structures: Sequence[str]) -> list[Detection]:
        return self.detect_batch([image], structures)[0]

    def heatmaps(self, images: Sequence[SliceImage], concepts: Sequence[str]) -> tuple[np.ndarray, list[CanvasMap]]:
        """(N, C, 256, 256) canvas probabilities and each image's canvas map."""
        encoded = [self._encode(image) for image in images]
        embeddings = torch.cat([features for features, _ in encoded])
        maps = [mapping for _, mapping in encoded]
        coords = torch.stack([coordinate_channels(m.body) for m in maps])
        # every concept the head knows competes for each cell, not only the asked ones
        known = list(dict.fromkeys(list(concepts) + self.model.metadata.get("concepts", [])))
        with torch.inference_mode():
            probs = torch.softmax(self.model.head(embeddings, coords, self.model.text(known)), dim=1)
            probs = F.interpolate(probs[:, 1 : 1 + len(concepts)], size=(CANVAS_SIZE, CANVAS_SIZE), mode="bilinear",
                                  align_corners=False)
        return probs.numpy(), list(maps)

    def _encode(self, image: SliceImage) -> tuple[torch.Tensor, CanvasMap]:
        """(1, 256, 64, 64) canvas embedding of a slice, remembered for the last `cached_slices` slices."""
        if image.key in self._embedded:
            self._embedded.move_to_end(image.key)
            return self._embedded[image.key]
        canvas, mapping = make_canvas(image.pixels, _pixel_mm(image), self.model.config.canvas_mm)
        found = (self.encoder.embed([canvas])[0].features.float().cpu(), mapping)
        self._embedded[image.key] = found
        while len(self._embedded) > self.cached_slices:
            self._embedded.popitem(last=False)
        return found

    def detect_batch(self, images: Sequence[SliceImage], structures: Sequence[str]) -> list[list[Detection]]:
        if not images or not structures:
            return [[] for _ in images]
        concepts = [concept_of(s) for s in structures]
        probs, maps = self.heatmaps(images, concepts)
        found = []
        for image, prob, mapping in zip(images, probs, maps):
            detections = []
            for structure, heat in zip(structures, prob):
                detections.extend(self._regions(structure, heat, mapping, image.pixels.shape))
            found.append(sorted(detections, key=lambda d: -d.score))
        return found

    def _regions(self, structure: str, heat: np.ndarray, mapping: CanvasMap, shape: tuple[int, int]) -> list[Detection]:
        """One detection per connected region above threshold, scored by its peak probability."""
        config = self.model.config
        labelled, count = ndimage.label(heat > config.region_threshold)
        min_pixels = config.min_region_mm2 / mapping.mm_per_pixel**2
        detections = []
        for region in range(1, count + 1):
            rr, cc = np.nonzero(labelled == region)
            if rr.size < min_pixels or heat[rr, cc].max() < config.presence_threshold:
                continue
            box = mapping.box_to_display((float(cc.min()), float(rr.min()), float(cc.max()), float(rr.max())), shape)
            if box[2] > box[0] and box[3] > box[1]:
                detections.append(Detection(structure, box, float(heat[rr, cc].max()), concept_text(concept_of(structure))))
        return detections
