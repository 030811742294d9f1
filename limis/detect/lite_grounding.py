"""lite-grounding: text -> boxes from a small head on the segmenter's own frozen LiteMedSAM embedding.

The head reads the embedding LiteMedSAM computes to segment the slice (the displayed, windowed
slice with its longest side resized to 256, padded; (256, 64, 64) features), so one encode per
slice serves detection and segmentation, and an on-disk `EmbeddingCache` helps both. That input
keeps the scan's field of view (1-2 mm per input pixel on abdominal scans), so the head also
gets each cell's physical position (mm from the trunk centre), its trunk-relative position and
whether it lies on the image or on the padding. A head trained with neighbouring-slice context also
reads the embeddings of the slices just above and below (`HeadConfig.context_slices`; the volume's
end slices stand in for themselves). An ensemble head (`HeadEnsemble`) averages the probabilities of member
heads, e.g. one reading the slice alone and one with context. A structure's MiniLM text embedding becomes a
query; a softmax over background and every known concept gives each cell's probability. Regions
of the heatmap give boxes scored by their peak, so "not present" is a low peak. A region counts when
its peak reaches the concept's presence threshold (chosen on held-out patients).

Paired structures are learned side-free ("kidney"): the pipeline picks the patient's side from
image geometry, never from where a side sat on the training screens. An unpaired organ is one box
per slice, around its nearby confident regions (a liver cut into two lobes on its upper slices).
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch import nn

from limis.detect.base import Detection, Detector, DetectorTraits
from limis.detect.body import body_extent, estimated_pixel_mm
from limis.errors import LimisError, WeightsNotFoundError
from limis.imaging.slice_image import SliceImage
from limis.weights import sha256_of

WEIGHTS_FILE = "lite_grounding.safetensors"
FORMAT = "native-embedding-v2"  # head files of the earlier 3 mm canvas design are refused
INPUT_SIZE = 256  # LiteMedSAM input side
GRID = 64  # LiteMedSAM embedding side
EMBED_DIM = 256  # LiteMedSAM embedding channels
CELL = INPUT_SIZE // GRID
TEXT_DIM = 384  # MiniLM-L6 sentence embedding
COORD_CHANNELS = 5
COORD_MM = 200.0  # physical coordinates are given in units of 200 mm
HEAD_SLICES = 4  # slices per head pass (~15 MiB of activations each on CPU)


def default_weights() -> Path:
    """The head shipped inside the package (trained by `limis train lite-grounding`)."""
    return Path(__file__).resolve().parent / "weights" / WEIGHTS_FILE


def concept_of(structure: str) -> str:
    """The side-free concept a structure is detected as ("kidney_left" -> "kidney"; "kidney" stays)."""
    from limis.vocab import all_structures

    return next((s.base for s in all_structures() if s.name == structure), structure)


@lru_cache(maxsize=None)
def spans_regions(concept: str) -> bool:
    """Whether one box may span several heatmap regions of the concept: unpaired organs (a liver's lobes),
    not paired structures (one box per side) and not vessels (aorta beside the IVC, or the iliac arteries)."""
    from limis.vocab import all_structures

    entries = [s for s in all_structures() if s.base == concept]
    return bool(entries) and all(s.laterality is None and s.category == "organ" for s in entries)


def concept_text(concept: str) -> str:
    """The phrase whose sentence embedding conditions the head ("inferior_vena_cava" -> "inferior vena cava")."""
    return concept.replace("_", " ")


def context_offsets(context_slices: int) -> tuple[int, ...]:
    """Slice offsets whose embeddings a head reads, in channel order: the slice, then -1, +1, -2, +2, ..."""
    return (0,) + tuple(sign * step for step in range(1, context_slices + 1) for sign in (-1, 1))


def input_size(shape: tuple[int, int]) -> tuple[int, int]:
    """(rows, cols) of a displayed slice after LiteMedSAM's longest-side resize to 256."""
    scale = INPUT_SIZE / max(shape)
    return max(1, int(round(shape[0] * scale))), max(1, int(round(shape[1] * scale)))


def slice_pixel_mm(image: SliceImage) -> tuple[float, float]:
    """The displayed slice's (row, col) pixel size, or an estimate from the trunk width when the picture carried none."""
    return image.geometry.pixel_spacing_mm if image.spacing_known else estimated_pixel_mm(image.pixels)


def coordinate_channels(pixels: np.ndarray, pixel_mm: tuple[float, float]) -> torch.Tensor:
    """(5, 64, 64) per embedding cell: mm from the trunk centre (rows, cols; / 200 mm), trunk-relative
    position (rows, cols; -1..1 across the trunk, clamped to +-2), and 1 on the image / 0 on the padding.

    `pixels` is the windowed displayed slice (rows, cols); `pixel_mm` its (row, col) spacing.
    """
    rows, cols = pixels.shape
    in_rows, in_cols = input_size((rows, cols))
    centres = (torch.arange(GRID, dtype=torch.float64) + 0.5) * CELL - 0.5  # input-pixel centres of the cells
    # LiteMedSAM resizes with align_corners=False: input pixel u sits at display (u + 0.5) / scale - 0.5
    display_r = (centres + 0.5) * (rows / in_rows) - 0.5
    display_c = (centres + 0.5) * (cols / in_cols) - 0.5
    r, c = torch.meshgrid(display_r, display_c, indexing="ij")
    r0, c0, r1, c1 = body_extent(pixels)
    mid_r, mid_c = (r0 + r1) / 2.0, (c0 + c1) / 2.0
    inside = ((centres[:, None] < in_rows) & (centres[None, :] < in_cols)).double()
    return torch.stack([
        (r - mid_r) * pixel_mm[0] / COORD_MM,
        (c - mid_c) * pixel_mm[1] / COORD_MM,
        ((r - mid_r) / max((r1 - r0) / 2.0, 1.0)).clamp(-2, 2),
        ((c - mid_c) / max((c1 - c0) / 2.0, 1.0)).clamp(-2, 2),
        inside,
    ]).float()


def heat_on_display(grid_probs: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """(C, 64, 64) cell probabilities -> (C, rows, cols) on the displayed slice (bilinear; padding dropped)."""
    in_rows, in_cols = input_size(shape)
    up = F.interpolate(grid_probs[None], size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
    return F.interpolate(up[..., :in_rows, :in_cols], size=shape, mode="bilinear", align_corners=False)[0]


class GroundingHead(nn.Module):
    """(B, E, 64, 64) embeddings + (B, 5, 64, 64) coordinates + (C, 384) text -> (B, 1 + C, 64, 64) logits.

    E is 256 per slice read: the slice's own LiteMedSAM embedding, then its neighbours' (`context_offsets`).

    Channel 0 is background; a softmax over channels gives each cell's probability of lying in
    each asked concept (labelmaps are exclusive, so concepts compete for a cell).
    """

    def __init__(self, embed_dim: int = EMBED_DIM, text_dim: int = TEXT_DIM, width: int = 96) -> None:
        super().__init__()
        self.width = width
        self.reduce = nn.Sequential(nn.Conv2d(embed_dim + COORD_CHANNELS, width, 1), nn.GroupNorm(8, width), nn.GELU())
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


class HeadEnsemble(nn.Module):
    """Member heads whose probabilities are averaged: same inputs and outputs as `GroundingHead`.

    Member k reads the first 256 * (2 c_k + 1) embedding channels (its slice, then its `context_offsets`), so a
    head without context and one with context share one input. Returns log mean probabilities, so a softmax
    over them gives the members' mean probability of each cell.
    """

    def __init__(self, member_context: Sequence[int], width: int = 96) -> None:
        super().__init__()
        self.reads = [EMBED_DIM * len(context_offsets(c)) for c in member_context]
        self.members = nn.ModuleList(GroundingHead(embed_dim=reads, width=width) for reads in self.reads)

    @classmethod
    def of(cls, heads: Sequence[GroundingHead], member_context: Sequence[int]) -> "HeadEnsemble":
        """An ensemble (in eval mode) holding the weights of trained heads, head k reading `member_context[k]`."""
        ensemble = cls(member_context, width=heads[0].width)
        for member, head in zip(ensemble.members, heads, strict=True):
            member.load_state_dict(head.state_dict())
        return ensemble.eval()

    def forward(self, embeddings: torch.Tensor, coords: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        probs = [torch.softmax(member(embeddings[:, :reads], coords, text), dim=1)
                 for member, reads in zip(self.members, self.reads)]
        return torch.stack(probs).mean(0).clamp_min(1e-12).log()


@dataclass(frozen=True)
class HeadConfig:
    """Architecture width and the thresholds that turn heatmaps into boxes.

    `presence_thresholds` holds per-concept peak thresholds chosen on held-out patients (see the
    model card); concepts without one use `presence_threshold`. `validated` lists per modality
    ("CT", "MR") the concepts whose presence was calibrated on held-out patients of that modality:
    the detector reports only those on images of that modality. Empty (an uncalibrated head): every concept.
    `absent_claims` holds per modality, for concepts the head claimed on held-out volumes wholly without them,
    [volumes claimed, volumes without it]: a found mask of such a concept comes with that caveat.
    `context_slices`: neighbouring slices read on each side (0: the slice alone).
    `member_context`: for an ensemble, each member's context slices (empty: one head).
    """

    width: int = 96
    context_slices: int = 0
    member_context: tuple[int, ...] = ()
    region_threshold: float = 0.35  # heatmap probability that outlines a region (cells half covered sit near 0.5)
    presence_threshold: float = 0.5  # a region counts only if its peak probability reaches this
    min_region_mm2: float = 50.0  # smaller regions are noise (100 lost a 3.5 ml gallbladder to an ensemble's tighter map)
    presence_thresholds: dict[str, float] = field(default_factory=dict)
    region_fraction: float = 0.7  # a concept with a low presence threshold outlines its regions lower too
    merge_fraction: float = 0.5  # an unpaired organ's box spans the regions whose peak reaches this share of the best ...
    merge_gap_mm: float = 50.0  # ... and that lie this close to the best region's box (15 split the DICOM spleen)
    validated: dict[str, list[str]] = field(default_factory=dict)
    absent_claims: dict[str, dict[str, list[int]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "member_context", tuple(self.member_context))  # a list when read from JSON

    @property
    def embed_dim(self) -> int:
        """Embedding channels the head reads: 256 per slice read."""
        return EMBED_DIM * len(context_offsets(self.context_slices))

    def presence(self, concept: str) -> float:
        return self.presence_thresholds.get(concept, self.presence_threshold)

    def validated_on(self, concept: str, modality: str) -> bool:
        return not self.validated or concept in self.validated.get(modality, ())

    def region(self, concept: str) -> float:
        return min(self.region_threshold, self.region_fraction * self.presence(concept))


class LiteGroundingModel:
    """The trained head with its text-embedding table and the encoder it was trained on; read-only after load."""

    def __init__(self, head: GroundingHead, text_table: dict[str, torch.Tensor], config: HeadConfig,
                 metadata: dict, weights_path: str | None = None) -> None:
        self.head = head.eval()
        self.text_table = dict(text_table)
        self.config = config
        self.metadata = metadata
        self.weights_path = weights_path

    @property
    def concepts(self) -> list[str]:
        """Every concept the head was trained on; they all compete for each cell at inference."""
        return list(self.metadata.get("concepts", []))

    def text(self, concepts: Sequence[str]) -> torch.Tensor:
        """(C, 384) embeddings; concepts outside the stored table are encoded with MiniLM (not stored)."""
        missing = [c for c in concepts if c not in self.text_table]
        extra: dict[str, torch.Tensor] = {}
        if missing:
            from limis.text.matcher import shared_matcher

            vectors = shared_matcher().encoder.encode([concept_text(c) for c in missing])
            extra = {c: torch.as_tensor(v) for c, v in zip(missing, vectors)}
        return torch.stack([self.text_table[c] if c in self.text_table else extra[c] for c in concepts])

    def save(self, path: str | Path) -> Path:
        from safetensors.torch import save_file

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {f"head.{k}": v.detach().cpu().contiguous() for k, v in self.head.state_dict().items()}
        concepts = sorted(self.text_table)
        tensors["text_table"] = torch.stack([self.text_table[c] for c in concepts]).contiguous()
        meta = {"format": FORMAT, "config": json.dumps(self.config.__dict__), "concepts": json.dumps(concepts),
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
        except (SafetensorError, KeyError, TypeError, json.JSONDecodeError, OSError) as error:
            raise LimisError(f"{path} is not a lite-grounding head file ({type(error).__name__}); "
                             "give a file written by `limis train lite-grounding`.") from error
        if meta.get("format") != FORMAT:
            raise LimisError(f"{path}: a lite-grounding head of an older format ({meta.get('format', '3 mm canvas')}); "
                             "retrain it with `limis train lite-grounding`.")
        head = (HeadEnsemble(config.member_context, width=config.width) if config.member_context
                else GroundingHead(embed_dim=config.embed_dim, width=config.width))
        state = {k[len("head."):]: v for k, v in tensors.items() if k.startswith("head.")}
        try:
            head.load_state_dict(state, strict=True)
        except RuntimeError as error:
            raise LimisError(f"{path}: head weights do not match this LIMIS version's architecture; retrain it.") from error
        table = dict(zip(concepts, tensors["text_table"]))
        return cls(head, table, config, json.loads(meta.get("metadata", "{}")), str(path))


class SliceEmbeddings(Protocol):
    """What the detector needs from an embedding cache: LiteMedSAM embeddings of displayed slices."""

    segmenter: Any  # has `name` and `weights_path`

    def get_many(self, images: Sequence[SliceImage]) -> list[Any]:
        """One embedding per image; `.features` is a (1, 256, 64, 64) tensor."""
        ...


def check_encoder(model: LiteGroundingModel, segmenter: Any) -> None:
    """Refuse embeddings from anything but the LiteMedSAM weights the head was trained on."""
    if getattr(segmenter, "name", None) != "litemedsam":
        raise LimisError(f"lite-grounding reads LiteMedSAM embeddings, not {getattr(segmenter, 'name', segmenter)!r}.")
    expected = model.metadata.get("encoder_sha256")
    weights = getattr(segmenter, "weights_path", None)
    if expected and weights and sha256_of(weights) != expected:
        raise LimisError(f"the lite-grounding head {model.weights_path} was trained on another LiteMedSAM encoder; "
                         "use the shipped lite_medsam.pth or retrain the head.")


class LiteGroundingDetector(Detector):
    """Detector backend: a shared read-only model bound to one caller's embedding cache.

    Cheap to create: the demo makes one per browser session over that session's cache, so
    sessions share the model but never state. One forward pass scores every known concept, so
    the probabilities of the last `remembered` slices are kept: asking for the next structure
    on the same slices costs no head pass.
    """

    name = "lite-grounding"
    # side-free; boxes from a 4-pixel-cell heatmap, tightened by the pipeline; reads the segmenter's embeddings
    traits = DetectorTraits(coarse_boxes=True, reads_embeddings=True)

    def __init__(self, model: LiteGroundingModel, embeddings: SliceEmbeddings, remembered: int = 160) -> None:
        check_encoder(model, embeddings.segmenter)
        self.model = model
        self.embeddings = embeddings
        self.remembered = remembered
        self._probabilities: OrderedDict[tuple, torch.Tensor] = OrderedDict()  # (slice key, concepts) -> (C, 64, 64)

    def detect(self, image: SliceImage, structures: Sequence[str]) -> list[Detection]:
        return self.detect_batch([image], structures)[0]

    def grid_probabilities(self, images: Sequence[SliceImage], concepts: Sequence[str]) -> torch.Tensor:
        """(N, C, 64, 64) probabilities of the asked concepts, every known concept competing.

        Slices missing from memory pass the head `HEAD_SLICES` at a time: one pass over a whole volume held
        every slice's embeddings twice and its activations at once (+200 MiB on a 20-slice CT).
        """
        known = tuple(self.model.concepts) + tuple(c for c in dict.fromkeys(concepts) if c not in self.model.concepts)
        missing = [im for im in {im.key: im for im in images}.values() if (im.key, known) not in self._probabilities]
        if missing:
            with torch.inference_mode():
                text = self.model.text(list(known))
                for start in range(0, len(missing), HEAD_SLICES):
                    self._remember(missing[start : start + HEAD_SLICES], known, text)
        rows = [known.index(c) for c in concepts]
        return torch.stack([self._probabilities[(im.key, known)][rows].float() for im in images])

    def slices_read(self, images: Sequence[SliceImage]) -> list[SliceImage]:
        """The images and, for a head with context, their neighbours, each once."""
        return super().slices_read(self._head_slices(images))

    def _head_slices(self, images: Sequence[SliceImage]) -> list[SliceImage]:
        """Per image the slices whose embeddings its head input stacks, in `context_offsets` order (repeats kept)."""
        offsets = context_offsets(self.model.config.context_slices)
        return [image.neighbour(offset) for image in images for offset in offsets]

    def _remember(self, images: Sequence[SliceImage], known: tuple[str, ...], text: torch.Tensor) -> None:
        """Run the head on `images` and keep their (C, 64, 64) probabilities of the `known` concepts (text: (C, 384))."""
        read = self.embeddings.get_many(self._head_slices(images))
        embeddings = torch.cat([e.features.float().cpu() for e in read]).reshape(len(images), -1, GRID, GRID)
        coords = torch.stack([coordinate_channels(im.pixels, slice_pixel_mm(im)) for im in images])
        probs = torch.softmax(self.model.head(embeddings, coords, text), dim=1)[:, 1:]
        for image, found in zip(images, probs):
            self._probabilities[(image.key, known)] = found.to(torch.float16)  # ~0.4 MB per slice
            while len(self._probabilities) > self.remembered:
                self._probabilities.popitem(last=False)

    def detect_batch(self, images: Sequence[SliceImage], structures: Sequence[str]) -> list[list[Detection]]:
        if not images or not structures:
            return [[] for _ in images]
        concepts = [concept_of(s) for s in structures]
        probs = self.grid_probabilities(images, concepts)
        found = []
        for image, grid in zip(images, probs):
            heat = heat_on_display(grid, image.pixels.shape).numpy()
            pixel_mm = slice_pixel_mm(image)
            detections = []
            for structure, concept, plane in zip(structures, concepts, heat):
                if self.model.config.validated_on(concept, image.modality):
                    detections.extend(self._regions(structure, concept, plane, pixel_mm))
            found.append(sorted(detections, key=lambda d: -d.score))
        return found

    def refusal(self, structure: str, modality: str) -> str | None:
        """Set for a concept the head's presence was not calibrated for on this modality (never seen present on
        held-out patients of it: a guess, which must not come out as a mask)."""
        concept = concept_of(structure)
        if self.model.config.validated_on(concept, modality):
            return None
        known = ", ".join(concept_text(c) for c in self.model.config.validated.get(modality, ())) or "nothing"
        return (f"not validated on {modality} for this head (it finds there: {known}); "
                "draw a box or choose another detector")

    def caveat(self, structure: str, modality: str) -> str | None:
        """Set for a concept this head claimed on held-out patients of `modality` who lack it (a gallbladder after
        cholecystectomy): its mask may be a confident wrong answer there."""
        concept = concept_of(structure)
        claim = self.model.config.absent_claims.get(modality, {}).get(concept)
        if not claim or not self.model.config.validated_on(concept, modality):
            return None
        claimed, asked = claim
        return (f"on {modality} patients without a {concept_text(concept)} (held out from training) this head still "
                f"found one in {claimed} of {asked}; if it may be absent (e.g. removed), check the mask")

    def support(self, images: Sequence[SliceImage], structure: str) -> list[np.ndarray]:
        """Per image (rows, cols): the structure's side-free concept probability, each cell raised to the highest
        of its 3 x 3 neighbours (the heatmap is resolved to a cell, so its edge is uncertain by one)."""
        probs = self.grid_probabilities(images, [concept_of(structure)])
        widened = F.max_pool2d(probs, kernel_size=3, stride=1, padding=1)
        return [heat_on_display(grid, image.pixels.shape)[0].numpy() for image, grid in zip(images, widened)]

    def _regions(self, structure: str, concept: str, heat: np.ndarray, pixel_mm: tuple[float, float]) -> list[Detection]:
        """Detections from the connected regions above threshold whose peak shows the concept present.

        Paired concepts and vessels give one detection per region (the pipeline chooses); an unpaired
        organ gives one detection around the best region and the nearby ones nearly as confident (liver
        lobes cut apart on upper slices), never around a faint or distant one. Scores are peak probabilities.
        """
        config = self.model.config
        labelled, count = ndimage.label(heat > config.region(concept))
        min_pixels = config.min_region_mm2 / (pixel_mm[0] * pixel_mm[1])
        regions = []
        for region in range(1, count + 1):
            rr, cc = np.nonzero(labelled == region)
            peak = float(heat[rr, cc].max())
            if rr.size >= min_pixels and peak >= config.presence(concept):
                regions.append(((cc.min(), rr.min(), cc.max(), rr.max()), peak))
        if len(regions) > 1 and spans_regions(concept):
            regions = [_span(regions, config, pixel_mm)]
        phrase = concept_text(concept)
        return [Detection(structure, tuple(float(v) for v in box), peak, phrase)
                for box, peak in regions if box[2] > box[0] and box[3] > box[1]]


def _span(regions: list[tuple[tuple, float]], config: HeadConfig, pixel_mm: tuple[float, float]) -> tuple[tuple, float]:
    """The best (box, peak) grown over the regions near it that are nearly as confident."""
    best_box, best_peak = max(regions, key=lambda region: region[1])
    gap_px = (config.merge_gap_mm / pixel_mm[1], config.merge_gap_mm / pixel_mm[0])  # (cols, rows)
    kept = [box for box, peak in regions if peak >= config.merge_fraction * best_peak
            and box[0] - best_box[2] <= gap_px[0] and best_box[0] - box[2] <= gap_px[0]
            and box[1] - best_box[3] <= gap_px[1] and best_box[1] - box[3] <= gap_px[1]]
    boxes = np.array(kept)
    return (boxes[:, 0].min(), boxes[:, 1].min(), boxes[:, 2].max(), boxes[:, 3].max()), best_peak
