"""Phrase -> boxes -> masks over a whole volume, slice by slice with box propagation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import numpy as np
from scipy import ndimage
from scipy.sparse.csgraph import connected_components

from limis.detect.base import Detection, Detector
from limis.imaging.display import Plane, Window, insert_display_slice, slice_axis, slice_count
from limis.imaging.overlap import dice
from limis.imaging.slice_image import Box, SliceImage, box_from_mask
from limis.imaging.volume import Volume
from limis.pipeline.laterality import keep_side
from limis.pipeline.slices import choose_window, slice_image
from limis.segment.base import Prompt, SegmentResult
from limis.segment.cache import EmbeddingCache

Progress = Callable[[int, int, str], None]  # (slices done, slices in this step, what is being done)
CONFIDENT = 0.5  # a detector map's probability from which a pixel is the structure, when judging a mask


@dataclass(frozen=True)
class SegmentOptions:
    """Inference options; one set of defaults, callers pass only what they change."""

    plane: Plane = Plane.AXIAL
    window: str | None = None  # CT preset name; None = modality default
    largest_component: bool = True
    detect_stride: int = 2  # run a (learned) detector on every n-th slice to find the z-range
    min_detection_score: float = 0.3
    propagation_margin: float = 0.1  # fraction of the box size added on each side when propagating
    min_mask_pixels: int = 3
    min_quality: float = 0.3  # stop propagating below this predicted IoU
    refine_coarse_boxes: int = 2  # rounds of growing a coarse detector box on the sides its mask touches
    min_support: float = 0.1  # mask pixels where the detector's own map (if it has one) is below this are cut
    rival_fraction: float = 0.5  # a run of seeds not followed is reported when its summed score reaches this share
    min_agreement: float = 0.5  # a mask whose Dice with the detector's confident region is lower is re-prompted from it
    extend_support: float = 0.5  # past the outermost seed, go on while this share of the mask lies in the detector's map


@dataclass
class StructureResult:
    """What was found for one structure; `found` False means it is not in this image."""

    structure: str
    label_id: int
    voxels: int = 0
    volume_ml: float = 0.0
    score: float = 0.0
    slice_range: tuple[int, int] | None = None
    refusal: str | None = None  # why the detector never looked for it on this modality ("not found" says nothing)
    caveat: str | None = None  # for a found structure: how the detector's answers for it are known to go wrong
    elsewhere: tuple[tuple[int, int], ...] = ()  # first-last slices where the detector also saw it, nearly as sure

    @property
    def found(self) -> bool:
        return self.voxels > 0


@dataclass(frozen=True)
class StructureTrace:
    """One structure through the volume: per display slice (of `options.plane`) the box prompted and its mask."""

    boxes: dict[int, Box]
    masks: dict[int, np.ndarray]  # (rows, cols) bool per slice index
    score: float  # best seed's detector score; 0 when not found
    elsewhere: tuple[tuple[int, int], ...] = ()  # (first, last) slices of rival runs of seeds, not followed

    @property
    def found(self) -> bool:
        return bool(self.masks)

    def volume(self, shape: tuple[int, int, int], plane: Plane) -> np.ndarray:
        """The slice masks as one canonical bool volume of `shape`."""
        mask = np.zeros(shape, dtype=bool)
        for index, view in self.masks.items():
            insert_display_slice(mask, plane, index, view)
        return mask


@dataclass
class VolumeSegmentation:
    """A canonical labelmap with its label table and per-structure results."""

    labelmap: np.ndarray
    labels: dict[int, str]
    results: list[StructureResult] = field(default_factory=list)


class GroundedPipeline:
    """Drives a Detector and a Segmenter over a volume; holds no per-image state besides its cache."""

    def __init__(self, detector: Detector, cache: EmbeddingCache) -> None:
        if not isinstance(detector, Detector):
            raise TypeError(f"{type(detector).__name__} is not a limis.detect.base.Detector: subclass it, set `name` "
                            "and `traits`, implement `detect`")
        self.detector = detector
        self.cache = cache

    @property
    def segmenter(self):
        return self.cache.segmenter

    def segment(
        self,
        volume: Volume,
        structures: Sequence[str],
        options: SegmentOptions = SegmentOptions(),
        progress: Progress | None = None,
    ) -> VolumeSegmentation:
        """One labelmap for all structures (ids 1..N in the order given; earlier ones keep overlaps)."""
        window = choose_window(volume, options.window)
        labelmap = np.zeros(volume.shape, dtype=np.uint16)
        labels: dict[int, str] = {}
        results = []
        for label_id, structure in enumerate(structures, start=1):
            labels[label_id] = structure
            trace = self.trace_structure(volume, structure, window, options, progress)
            mask = trace.volume(volume.shape, Plane(options.plane))
            if options.largest_component and mask.any():
                mask = largest_component(mask)
            mask &= labelmap == 0
            labelmap[mask] = label_id
            results.append(self._summary(volume, structure, label_id, mask, trace, options.plane))
        return VolumeSegmentation(labelmap, labels, results)

    def trace_structure(
        self, volume: Volume, structure: str, window: Window, options: SegmentOptions,
        progress: Progress | None = None, within: range | None = None,
    ) -> StructureTrace:
        """Find a structure's seeds (only among slices `within` when given), then propagate from them.

        Seeds found inside `within` need only the detector's own presence threshold: the caller (a
        user saying "it is here") vouches for the region, so the pipeline's stricter seed score is waived.
        """
        if self.detector.refusal(structure, volume.modality):  # it would drop every detection: encode nothing
            return StructureTrace({}, {}, 0.0)
        runs = self._find_seeds(volume, structure, window, options, within, progress)
        if not runs:
            return StructureTrace({}, {}, 0.0)
        seeds, total = runs[0], _total(runs[0])
        elsewhere = tuple((min(run), max(run)) for run in runs[1:] if _total(run) >= options.rival_fraction * total)
        boxes, masks = self._propagate(volume, seeds, window, options, progress, structure)
        return StructureTrace({i: boxes[i] for i in masks}, masks, max(d.score for d in seeds.values()), elsewhere)

    def _find_seeds(self, volume: Volume, structure: str, window: Window, options: SegmentOptions,
                    within: range | None = None, progress: Progress | None = None) -> list[dict[int, Detection]]:
        """Best detection of the structure per examined slice, grouped into runs (`seed_runs`), the strongest first;
        a detector that knows where its boxes are (oracle, manual) gives one run."""
        plane = Plane(options.plane)
        known = self.detector.candidate_slices(structure, slice_axis(plane))
        if known is not None:  # oracle / manual: look exactly where the boxes are
            indices = known.tolist()
        else:  # every n-th slice, or every slice of the region the user points at
            every = range(0, slice_count(volume.shape, plane), max(1, options.detect_stride))
            indices = list(within if within is not None else every)
        if within is not None:
            indices = [i for i in indices if i in within]
        images = [slice_image(volume, plane, i, window) for i in indices]
        if progress is not None and self.detector.traits.reads_embeddings:  # encode first, in steps the user sees
            for start in range(0, len(images), 4):
                self.cache.get_many(self.detector.slices_read(images[start : start + 4]))
                progress(min(start + 4, len(images)), len(images), f"searching for {_display(structure)}")
        found = detect_structure(self.detector, images, structure)
        min_score = 0.0 if within is not None else options.min_detection_score
        seeds = {}
        for image, detections in zip(images, found):
            good = [d for d in detections if d.score >= min_score]
            if good:
                seeds[image.geometry.index] = max(good, key=lambda d: d.score)
        if not seeds:
            return []
        return seed_runs(seeds, max(1, options.detect_stride)) if known is None else [seeds]

    def _propagate(
        self,
        volume: Volume,
        seeds: dict[int, Detection],
        window: Window,
        options: SegmentOptions,
        progress: Progress | None,
        structure: str,
    ) -> tuple[dict[int, Box], dict[int, np.ndarray]]:
        """Boxes and masks per slice, from the best seed outward; seeds re-anchor the box, gaps reuse the last mask's box,
        and where propagation fails before the last seed it resumes at the next one (the detector saw the structure there).
        A mask that disagrees with the detector's map is re-prompted from it (`_agreeing_with_map`); past the
        outermost seeds propagation goes on while the map holds the mask (`_extend`).

        The masks are cut to the detector's map (`cut_to_support`); `boxes` may keep slices whose mask the cut dropped.
        """
        plane = Plane(options.plane)
        count = slice_count(volume.shape, plane)
        every_slice_seeded = self.detector.traits.dense_boxes
        low, high = min(seeds), max(seeds)
        reach = 0 if every_slice_seeded else max(1, options.detect_stride) - 1
        first, last = max(0, low - reach), min(count - 1, high + reach)
        images = {i: slice_image(volume, plane, i, window) for i in range(first, last + 1)}
        embeddings = dict(zip(images, self.cache.get_many(list(images.values()))))
        maps = self._support_maps(images, structure)
        start = max(seeds, key=lambda i: (seeds[i].score, _area(seeds[i].box)))
        masks: dict[int, np.ndarray] = {}
        boxes: dict[int, Box] = {}
        total, done = last - first + 1, 0
        for step in (1, -1):
            previous: np.ndarray | None = None
            index = start if step == 1 else start - 1
            if step == -1:
                previous = masks.get(start)
            while first <= index <= last:
                if every_slice_seeded and index not in seeds:
                    break
                box = _next_box(index, seeds, previous, options.propagation_margin, images[index].pixels.shape)
                if box is None:
                    break
                rounds = options.refine_coarse_boxes if index in seeds and self.detector.traits.coarse_boxes else 0
                box, result = self._segment_box(embeddings[index], box, rounds)
                if maps is not None:
                    box, result = self._agreeing_with_map(embeddings[index], maps[index], box, result, options)
                done += 1
                if progress:
                    progress(done, total, f"segmenting {_display(structure)}")
                too_small = result.mask.sum() < options.min_mask_pixels
                if not every_slice_seeded and (too_small or (index not in seeds and result.score < options.min_quality)):
                    resume = _next_seed(seeds, index, step)
                    if resume is None:
                        break
                    index, previous = resume, None  # the detector saw it further on: re-anchor there
                    continue
                masks[index], boxes[index] = result.mask, box
                previous = result.mask
                index += step
            if maps is not None and previous is not None and not first <= index <= last and not every_slice_seeded:
                for index, support, box, mask in self._extend(volume, index, step, previous, window, options, structure):
                    maps[index], boxes[index], masks[index] = support, box, mask
        return boxes, masks if maps is None else cut_to_support(masks, maps, options)

    def _support_maps(self, images: dict[int, SliceImage], structure: str) -> dict[int, np.ndarray] | None:
        """Per slice index the detector's (rows, cols) map of the structure; None for a box-only detector."""
        found = self.detector.support(list(images.values()), structure)
        return None if found is None else dict(zip(images, found))

    def _extend(self, volume: Volume, index: int, step: int, previous: np.ndarray, window: Window,
                options: SegmentOptions, structure: str) -> Iterator[tuple[int, np.ndarray, Box, np.ndarray]]:
        """(slice index, detector's map, box, mask) past the outermost seed, from `index` in direction `step`, while
        the segmenter is sure of its mask and at least `options.extend_support` of the mask lies in the map (at
        `options.min_support`): an organ's thin ends often score below the seed score, yet the map still holds them.
        Without the cut (`min_support` 0) every mask would lie in the map, so nothing is added."""
        if options.extend_support <= 0 or options.min_support <= 0:
            return
        plane = Plane(options.plane)
        while 0 <= index < slice_count(volume.shape, plane):
            image = slice_image(volume, plane, index, window)
            support = self.detector.support([image], structure)[0]
            box = expand_box(box_from_mask(previous), options.propagation_margin, image.pixels.shape)
            box, result = self._segment_box(self.cache.get_many([image])[0], box)
            held = int((result.mask & (support >= options.min_support)).sum())
            if result.score < options.min_quality or held < max(options.min_mask_pixels,
                                                                 options.extend_support * result.mask.sum()):
                return
            yield index, support, box, result.mask
            previous = result.mask
            index += step

    def _agreeing_with_map(self, embedding, support: np.ndarray, box: Box, result: SegmentResult,
                           options: SegmentOptions) -> tuple[Box, SegmentResult]:
        """The box and mask, or those prompted by the box of the detector's confident region when that mask agrees
        better with the region.

        A box around the structure and a neighbour (a merged span, a box grown from the previous slice) can make the
        segmenter outline the neighbour; the detector's map says which object was asked for. The judge is the map's
        confident regions (>= `CONFIDENT`) that the box reaches, never one elsewhere (the other side's kidney);
        a mask whose Dice with them is below `options.min_agreement` is re-prompted with the box of the largest.
        `support` is the detector's (rows, cols) map of the structure on the slice.
        """
        if options.min_agreement <= 0:
            return box, result
        regions, count = ndimage.label(support >= CONFIDENT)
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        touched = np.unique(regions[y0 : y1 + 1, x0 : x1 + 1])
        confident = np.isin(regions, touched[touched > 0])
        if not confident.any():
            return box, result
        agreement = dice(result.mask, confident)
        if agreement >= options.min_agreement:
            return box, result
        largest = regions == 1 + int(np.argmax(ndimage.sum(confident, regions, range(1, count + 1))))
        other_box, other = self._segment_box(embedding, box_from_mask(largest))
        if other.score >= options.min_quality and dice(other.mask, confident) > agreement:
            return other_box, other
        return box, result

    def _segment_box(self, embedding, box: Box, refine_rounds: int = 0) -> tuple[Box, SegmentResult]:
        """The box finally prompted and its mask; each refine round grows the sides the mask runs into (a box drawn too small)."""
        result = self.segmenter.segment(embedding, [Prompt(box=box)])[0]
        for _ in range(refine_rounds):
            grown = grow_touched_sides(box, result.mask)
            if grown == box:
                break
            box, result = grown, self.segmenter.segment(embedding, [Prompt(box=grown)])[0]
        return box, result

    def _summary(
        self, volume: Volume, structure: str, label_id: int, mask: np.ndarray, trace: StructureTrace, plane: Plane
    ) -> StructureResult:
        voxels = int(mask.sum())
        axis = slice_axis(plane)
        covered = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
        return StructureResult(
            structure=structure,
            label_id=label_id,
            voxels=voxels,
            volume_ml=voxels * volume.voxel_volume_ml,
            score=trace.score,
            elsewhere=trace.elsewhere,
            slice_range=(int(covered[0]), int(covered[-1])) if covered.size else None,
            refusal=self.detector.refusal(structure, volume.modality),
            caveat=self.detector.caveat(structure, volume.modality) if voxels else None,
        )


def cut_to_support(masks: dict[int, np.ndarray], maps: dict[int, np.ndarray],
                   options: SegmentOptions) -> dict[int, np.ndarray]:
    """The masks cut to where the detector's map (per slice index) gives the structure at least `options.min_support`.

    A box-prompted mask leaks into a neighbour of similar intensity (stomach into bowel, pancreas
    into vessels); a heatmap detector has said where the structure is not. Slices left with fewer
    than `options.min_mask_pixels` are dropped.
    """
    if options.min_support <= 0:
        return masks
    cut = {i: mask & (maps[i] >= options.min_support) for i, mask in masks.items()}
    return {i: mask for i, mask in cut.items() if mask.sum() >= options.min_mask_pixels}


def elsewhere_text(spans: Sequence[Sequence[int]]) -> str | None:
    """One line naming the (first, last) slices where a structure was also seen but not followed; None for none."""
    if not spans:
        return None
    named = ", ".join(f"{first}-{last}" if first != last else f"{first}" for first, last in spans)
    return f"also seen, nearly as sure, on slices {named}; not included: look there if the mask is in the wrong place"


def grow_touched_sides(box: Box, mask: np.ndarray, fraction: float = 0.15, touch_px: int = 2) -> Box:
    """The box with each side the mask reaches (within `touch_px`) moved out by `fraction` of the box size.

    A mask cut flat by its prompt box means the object continues past it; sides at the image
    border stay.
    """
    x0, y0, x1, y1 = box
    rows, cols = mask.shape
    r0, r1 = int(max(0, np.floor(y0))), int(min(rows - 1, np.ceil(y1)))
    c0, c1 = int(max(0, np.floor(x0))), int(min(cols - 1, np.ceil(x1)))
    inside = mask[r0 : r1 + 1, c0 : c1 + 1]
    if not inside.any():
        return box
    dx, dy = max(1.0, (x1 - x0) * fraction), max(1.0, (y1 - y0) * fraction)
    t = touch_px
    if inside[:, :t].any() and x0 > 0:
        x0 = max(0.0, x0 - dx)
    if inside[:, -t:].any() and x1 < cols - 1:
        x1 = min(cols - 1.0, x1 + dx)
    if inside[:t].any() and y0 > 0:
        y0 = max(0.0, y0 - dy)
    if inside[-t:].any() and y1 < rows - 1:
        y1 = min(rows - 1.0, y1 + dy)
    return x0, y0, x1, y1


def seed_runs(seeds: dict[int, Detection], stride: int, reach: float = 0.5) -> list[dict[int, Detection]]:
    """The seeds grouped into runs, the highest summed score first; two seeds belong to one run when they lie within
    one missed examined slice of each other and their boxes meet (each grown by `reach` of its size on each side).

    An organ is one stretch along the slice axis whose cross-section moves little from one examined slice
    to the next; isolated hits elsewhere, and a stretch whose box jumps to a place the organ does not reach
    from the previous slices, are detector noise or another structure. A single slice whose best box is
    elsewhere (the pancreatic tail alone) does not split a run that goes on where it was.
    """
    if not seeds:
        return []
    order = sorted(seeds)
    linked = np.zeros((len(order), len(order)), dtype=bool)
    for a, first in enumerate(order):
        for b in range(a + 1, len(order)):
            if order[b] - first > 2 * stride:
                break
            linked[a, b] = boxes_meet(seeds[first].box, seeds[order[b]].box, reach)
    count, run_of = connected_components(linked, directed=False)
    runs = [{i: seeds[i] for i, run in zip(order, run_of) if run == k} for k in range(count)]
    return sorted(runs, key=_total, reverse=True)


def _total(run: dict[int, Detection]) -> float:
    return sum(detection.score for detection in run.values())


def boxes_meet(a: Box, b: Box, reach: float) -> bool:
    """Whether two (x0, y0, x1, y1) boxes overlap once each is grown by `reach` of its own size on each side."""
    grown = [(x0 - reach * (x1 - x0), y0 - reach * (y1 - y0), x1 + reach * (x1 - x0), y1 + reach * (y1 - y0))
             for x0, y0, x1, y1 in (a, b)]
    (ax0, ay0, ax1, ay1), (bx0, by0, bx1, by1) = grown
    return ax0 <= bx1 and bx0 <= ax1 and ay0 <= by1 and by0 <= ay1


def detect_structure(detector: Detector, images: Sequence[SliceImage], structure: str) -> list[list[Detection]]:
    """Detections of one structure per image, best first.

    A detector with no notion of sides (e.g. Grounding DINO) is asked for the side-free concept
    ("kidney"); the patient's side is then chosen from image geometry, never from screen position.
    """
    from limis.vocab import get_structure

    entry = get_structure(structure)
    asks_side = entry.laterality is not None and not detector.traits.understands_laterality
    query = entry.base if asks_side else structure
    raw = detector.detect_batch(list(images), [query])
    if asks_side:
        raw = [
            [Detection(structure, d.box, d.score, d.phrase) for d in keep_side(dets, entry.laterality, image)]
            for image, dets in zip(images, raw)
        ]
    return [sorted(dets, key=lambda d: -d.score) for dets in raw]


def _next_seed(seeds: dict[int, Detection], index: int, step: int) -> int | None:
    """The nearest seed beyond `index` in the direction `step` (+1 or -1), if any."""
    ahead = [i for i in seeds if (i - index) * step > 0]
    return min(ahead, key=lambda i: abs(i - index)) if ahead else None


def _next_box(
    index: int, seeds: dict[int, Detection], previous: np.ndarray | None, margin: float, shape: tuple[int, int]
) -> Box | None:
    """The seed's box where the detector looked, else the previous slice's mask box grown by `margin`."""
    if index in seeds:
        return seeds[index].box
    return expand_box(box_from_mask(previous), margin, shape) if previous is not None else None


def _display(structure: str) -> str:
    from limis.vocab import display_name

    return display_name(structure).lower()


def _area(box: Box) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def expand_box(box: Box | None, margin: float, shape: tuple[int, int]) -> Box | None:
    """Grow a box by `margin` of its size on each side (at least one pixel), clipped to the slice."""
    if box is None:
        return None
    x0, y0, x1, y1 = box
    dx = max(1.0, (x1 - x0) * margin)
    dy = max(1.0, (y1 - y0) * margin)
    rows, cols = shape
    return max(0.0, x0 - dx), max(0.0, y0 - dy), min(cols - 1.0, x1 + dx), min(rows - 1.0, y1 + dy)


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 26-connected component of a boolean 3D mask."""
    labelled, count = ndimage.label(mask, structure=np.ones((3, 3, 3), dtype=bool))
    if count <= 1:
        return mask
    sizes = np.bincount(labelled.ravel())
    sizes[0] = 0
    return labelled == int(np.argmax(sizes))
