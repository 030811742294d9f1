"""Training slices for the lite-grounding head: cached LiteMedSAM embeddings, coordinates and cell targets.

Every axial slice of every case of the chosen manifest splits is encoded through the same
`EmbeddingCache` (and `slice_image`, window included) that inference uses, so a cache folder
filled once serves training, cross-validation and `limis eval ... --cache-dir`.

Datasets label different structure sets (BTCV 13 organs, CHAOS 4, TotalSegmentator 117). Each
slice records which concepts its dataset labels (`labelled`): a concept the dataset does not
label is unknown there, not background (the loss marginalises it into background).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, NamedTuple, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from limis.detect.lite_grounding import (
    COORD_CHANNELS,
    EMBED_DIM,
    GRID,
    INPUT_SIZE,
    context_offsets,
    coordinate_channels,
    input_size,
    slice_pixel_mm,
)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class DataSource:
    """One manifest and the splits taken from it ("fold0,fold1")."""

    manifest: str
    splits: str

    @classmethod
    def parse(cls, text: str) -> "DataSource":
        """"path.yaml:fold1,fold2" -> DataSource; a path alone takes the split "train"."""
        path, sep, splits = text.rpartition(":")
        if not sep or not splits or "/" in splits or splits.endswith((".yaml", ".yml", ".json")):
            return cls(text, "train")
        return cls(path, splits)


class SliceRecord(NamedTuple):
    case: str
    index: int  # axial slice index in the canonical volume
    modality: str
    split: str  # the case's manifest split (cross-validation fold)


@dataclass
class TrainingSlices:
    """N slices: embeddings (N, 256, 64, 64) float16, coords (N, 5, 64, 64), targets (N, C, 64, 64) float16
    occupancy of each concept, labelled (N, C) bool, and a record per slice; every `slice_step`-th slice was loaded."""

    embeddings: torch.Tensor
    coords: torch.Tensor
    targets: torch.Tensor
    labelled: torch.Tensor
    concepts: list[str]
    slices: list[SliceRecord]
    slice_step: int = 1

    def context_rows(self, context_slices: int) -> torch.Tensor:
        """(N, K) rows of the slices whose embeddings each slice's head input reads, in `context_offsets` order: the
        same case's loaded slice `offset * slice_step` indices away, clamped to the case's first and last loaded slice
        (as inference clamps to the volume's ends)."""
        row_of = {(s.case, s.index): row for row, s in enumerate(self.slices)}
        ends: dict[str, tuple[int, int]] = {}
        for s in self.slices:
            low, high = ends.get(s.case, (s.index, s.index))
            ends[s.case] = (min(low, s.index), max(high, s.index))
        offsets = context_offsets(context_slices)
        return torch.tensor([[row_of[(s.case, min(max(s.index + offset * self.slice_step, ends[s.case][0]), ends[s.case][1]))]
                              for offset in offsets] for s in self.slices], dtype=torch.long)

    def head_inputs(self, rows: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
        """(B, 256 K, 64, 64) float32: each batch slice's embedding followed by its context's (`rows` from `context_rows`)."""
        return self.embeddings[rows[batch].flatten()].float().reshape(len(batch), -1, GRID, GRID)


def trainable_concepts(names: dict[int, str]) -> dict[str, list[int]]:
    """Side-free concept -> label ids, for every label except numbered ribs/vertebrae (too alike to ground by name)."""
    from limis import vocab
    from limis.vocab.registry import load_vocabulary

    numbered = {m for family in load_vocabulary().families.values() for m in family.members.values()}
    concepts: dict[str, list[int]] = {}
    for label_id, name in sorted(names.items()):
        try:
            entry = vocab.get_structure(name)
        except Exception:  # a label outside the vocabulary cannot be asked for by name
            continue
        if name not in numbered:
            concepts.setdefault(entry.base, []).append(label_id)
    return concepts


def cell_occupancy(labels: np.ndarray, concept_ids: Sequence[Sequence[int]]) -> torch.Tensor:
    """(C, 64, 64) float16: the fraction of each embedding cell covered by each concept.

    `labels` is a displayed (rows, cols) label slice; it is resized (nearest) exactly as LiteMedSAM
    resizes the image (longest side 256, padding at the bottom/right is empty).
    """
    rows, cols = input_size(labels.shape)
    lookup = np.zeros(max([int(labels.max())] + [i for ids in concept_ids for i in ids]) + 1, dtype=np.int64)
    for index, ids in enumerate(concept_ids, start=1):
        lookup[list(ids)] = index  # 0 = no asked concept
    which = torch.as_tensor(lookup[labels.astype(np.int64)], dtype=torch.float32)
    resized = F.interpolate(which[None, None], size=(rows, cols), mode="nearest")[0, 0].long()
    padded = torch.zeros(INPUT_SIZE, INPUT_SIZE, dtype=torch.long)
    padded[:rows, :cols] = resized
    planes = torch.zeros(len(concept_ids) + 1, INPUT_SIZE, INPUT_SIZE).scatter_(0, padded[None], 1.0)[1:]
    return F.adaptive_avg_pool2d(planes[None], GRID)[0].to(torch.float16)


def load_training_slices(sources: Sequence[DataSource], segmenter, cache_dir, slice_step: int = 1,
                         say: Progress = print) -> TrainingSlices:
    """Encode (or read from `cache_dir`) every `slice_step`-th axial slice of the sources' cases."""
    from limis import vocab
    from limis.eval.cases import load_case
    from limis.eval.datasets import load_manifest
    from limis.imaging.display import Plane, display_slice, slice_count
    from limis.pipeline.slices import choose_window, slice_image
    from limis.segment.cache import EmbeddingCache

    cases = []
    for source in sources:
        manifest = load_manifest(source.manifest)
        cases += [(manifest, case) for case in manifest.split(source.splits)]
    per_case = []
    for manifest, case in cases:
        started = time.time()
        volume, labels, names = load_case(case, manifest)
        found = trainable_concepts(names)
        for structure in manifest.absent:  # known negatives: labelled, never present
            found.setdefault(vocab.get_structure(structure).base, [])
        per_case.append((case, volume, labels, found))
        say(f"{case.case_id}: {volume.modality} {volume.shape} ({time.time() - started:.0f} s to read)")
    concepts = sorted({c for *_, found in per_case for c in found})
    step = max(1, slice_step)
    indices = [range(0, slice_count(volume.shape, Plane.AXIAL), step) for _, volume, _, _ in per_case]
    total = sum(len(chosen) for chosen in indices)  # filled in place: stacking a list held every slice twice (+6 GB)
    data = TrainingSlices(
        embeddings=torch.empty(total, EMBED_DIM, GRID, GRID, dtype=torch.float16),
        coords=torch.empty(total, COORD_CHANNELS, GRID, GRID),
        targets=torch.empty(total, len(concepts), GRID, GRID, dtype=torch.float16),
        labelled=torch.empty(total, len(concepts), dtype=torch.bool),
        concepts=concepts, slices=[], slice_step=step,
    )
    for (case, volume, labels, found), chosen in zip(per_case, indices):
        started = time.time()
        window = choose_window(volume)
        cache = EmbeddingCache(segmenter, disk_dir=cache_dir, max_bytes=1 << 27)
        known = torch.tensor([c in found for c in concepts])
        ids = [found.get(c, []) for c in concepts]
        for index in chosen:
            row = len(data.slices)
            image = slice_image(volume, Plane.AXIAL, index, window)
            data.embeddings[row] = cache.get(image).features[0]
            data.coords[row] = coordinate_channels(image.pixels, slice_pixel_mm(image))
            data.targets[row] = cell_occupancy(display_slice(labels, Plane.AXIAL, index), ids)
            data.labelled[row] = known
            data.slices.append(SliceRecord(case.case_id, index, volume.modality, case.split))
        say(f"{case.case_id}: {len(chosen)} slices ready ({time.time() - started:.0f} s)")
    return data
