"""One interactive session on one image: all state, full undo/redo, edits re-run only the decoder.

The CLI chat, the demo and simulated users all drive this API. Models are shared and state-free;
every segmentation edit is a `SessionState` snapshot, so undo restores exactly; what is shown
(plane, slice, window) is a `View` outside the history, so undo never moves the view.

On a volume a query runs the 3D pipeline (detect, then propagate slice to slice) and stores the
box and mask of every slice; a refinement changes the shown slice only, until the user says
"apply to all slices". On a single-slice picture everything is per slice.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field

import numpy as np

from limis.detect.base import Detection, Detector
from limis.detect.oracle import ManualDetector
from limis.errors import LimisError
from limis.imaging.display import Plane, display_slice, insert_display_slice, slice_count
from limis.imaging.overlap import dice
from limis.imaging.slice_image import Box, box_from_mask
from limis.imaging.volume import Volume
from limis.interact import commands as cmd
from limis.interact import geometry as geo
from limis.interact.log import InteractionLog
from limis.pipeline.grounded import (
    GroundedPipeline,
    Progress,
    SegmentOptions,
    StructureTrace,
    detect_structure,
    elsewhere_text,
    expand_box,
    largest_component,
)
from limis.pipeline.slices import choose_window, slice_image
from limis.segment.base import Prompt
from limis.segment.cache import EmbeddingCache
from limis.vocab import label_ids

SliceKey = tuple[str, int]  # (plane, index)


@dataclass(frozen=True)
class ObjectState:
    """Prompts, candidates and masks of one structure; masks are never modified in place."""

    label_id: int
    boxes: dict[SliceKey, Box] = field(default_factory=dict)
    points: dict[SliceKey, tuple[tuple[float, float, int], ...]] = field(default_factory=dict)
    masks: dict[SliceKey, np.ndarray] = field(default_factory=dict)
    candidates: dict[SliceKey, tuple[Box, ...]] = field(default_factory=dict)
    choice: dict[SliceKey, int] = field(default_factory=dict)


@dataclass(frozen=True)
class SliceEdit:
    """A refinement made on one slice: what "apply to all slices" repeats on the structure's other slices."""

    structure: str
    key: SliceKey
    edit: object


@dataclass(frozen=True)
class SessionState:
    """The segmentation: structures, the active one and the last slice edit; one snapshot per edit."""

    active: str | None = None
    objects: dict[str, ObjectState] = field(default_factory=dict)
    accepted: bool = False
    done: bool = False
    last_edit: SliceEdit | None = None
    propagated: bool = False  # this snapshot spread an edit to every slice ("only here" takes it back)


@dataclass
class View:
    """What is shown; changing it is not an edit (undo leaves it)."""

    plane: str
    index: int
    window: str | None


@dataclass(frozen=True)
class Reply:
    """What a command did: a short sentence for chat/TTS, whether anything changed, Dice if known.

    `scope` says what an edit changed: "volume" (structures added, removed, accepted), "slice", "all slices",
    "slices" (an end grown or trimmed), "undo" or "redo"; None for view changes and refusals (never in the history).
    """

    text: str
    changed: bool
    edit: object | None = None
    dice: float | None = None
    scope: str | None = None


def _with(state: SessionState, **changes) -> SessionState:
    return dataclasses.replace(state, **changes)


def _with_object(state: SessionState, name: str, obj: ObjectState) -> SessionState:
    return _with(state, objects={**state.objects, name: obj})


def _dict_with(mapping: dict, key, value) -> dict:
    updated = dict(mapping)
    if value is None:
        updated.pop(key, None)
    else:
        updated[key] = value
    return updated


class Session:
    """Interactive state for one volume; the only place such state lives."""

    def __init__(
        self,
        volume: Volume,
        cache: EmbeddingCache,
        detector=None,
        reference: tuple[np.ndarray, dict[int, str]] | None = None,
        log: InteractionLog | None = None,
        plane: Plane = Plane.AXIAL,
        index: int | None = None,
        window: str | None = None,
        volumetric: bool | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.volume = volume
        self.cache = cache
        self.detector = detector
        self.reference = reference
        self.log = log
        self.progress = progress  # the caller's progress display for 3D queries (chat, demo)
        self.volumetric = sum(s > 1 for s in volume.shape) == 3 if volumetric is None else volumetric
        count = slice_count(volume.shape, plane)
        self.view = View(Plane(plane).value, count // 2 if index is None else index, window)
        self.history: list[SessionState] = [SessionState()]
        self.future: list[SessionState] = []
        self.looked_for: tuple[str, ...] = ()  # the last structures asked for and not found ("it is here" finds them)
        self._composed: dict[str, tuple[ObjectState, np.ndarray]] = {}  # structure -> (its state, 3D mask of it)
        self._truth: dict[str, np.ndarray] = {}  # structure -> its 3D reference mask (the reference never changes)

    def fork(self) -> "Session":
        """An independent session from this one's current state (snapshots are immutable, so they are shared)."""
        twin = Session(self.volume, self.cache, detector=self.detector, reference=self.reference,
                       plane=Plane(self.view.plane), index=self.view.index, window=self.view.window,
                       volumetric=self.volumetric)
        twin.history = list(self.history)
        return twin

    # ---- state access ----
    @property
    def state(self) -> SessionState:
        return self.history[-1]

    @property
    def slice_key(self) -> SliceKey:
        return self.view.plane, self.view.index

    def image_at(self, key: SliceKey):
        """The displayed slice `key` = (plane, index) in the view's window."""
        return slice_image(self.volume, Plane(key[0]), key[1], choose_window(self.volume, self.view.window))

    def current_image(self):
        return self.image_at(self.slice_key)

    def mask(self, structure: str | None = None) -> np.ndarray | None:
        """Boolean mask (display rows, cols) of a structure on the current slice; a structure segmented in
        another plane is shown as the cut through its 3D mask."""
        name = structure or self.state.active
        obj = self.state.objects.get(name) if name else None
        if obj is None or not obj.masks:
            return None
        if self.slice_key in obj.masks:
            return obj.masks[self.slice_key]
        if all(plane == self.view.plane for plane, _ in obj.masks):
            return None
        view = display_slice(self.structure_volume(name), Plane(self.view.plane), self.view.index)
        return view if view.any() else None

    def box(self, structure: str | None = None) -> Box | None:
        name = structure or self.state.active
        obj = self.state.objects.get(name) if name else None
        return obj.boxes.get(self.slice_key) if obj else None

    def structure_volume(self, structure: str) -> np.ndarray:
        """Canonical 3D bool mask of one structure (every slice it has in every plane), remembered until it changes."""
        obj = self.state.objects[structure]
        known = self._composed.get(structure)
        if known is not None and known[0] is obj:
            return known[1]
        volume = np.zeros(self.volume.shape, dtype=bool)
        for (plane, index), view in obj.masks.items():
            insert_display_slice(volume, Plane(plane), index, display_slice(volume, Plane(plane), index) | view)
        self._composed = {n: v for n, v in self._composed.items() if n in self.state.objects}
        self._composed[structure] = (obj, volume)
        return volume

    def labelmap(self) -> tuple[np.ndarray, dict[int, str]]:
        """Canonical 3D labelmap of every mask on every slice (earlier structures keep overlaps), and its label table."""
        labelmap = np.zeros(self.volume.shape, dtype=np.uint16)
        labels = {}
        for name, obj in self.state.objects.items():
            if not obj.masks:
                continue
            labels[obj.label_id] = name
            labelmap[self.structure_volume(name) & (labelmap == 0)] = obj.label_id
        return labelmap, labels

    def dice(self, structure: str | None = None) -> float | None:
        """2D Dice of a structure on the current slice against the reference, None without one."""
        name = structure or self.state.active
        if self.reference is None or name is None:
            return None
        labels, names = self.reference
        truth = np.isin(display_slice(labels, Plane(self.view.plane), self.view.index), label_ids(name, names))
        mask = self.mask(name)
        return dice(np.zeros_like(truth) if mask is None else mask, truth)

    def volume_dice(self, structure: str | None = None) -> float | None:
        """3D Dice of a structure against the reference, None without one."""
        name = structure or self.state.active
        if self.reference is None or name is None:
            return None
        if name not in self._truth:
            labels, names = self.reference
            self._truth[name] = np.isin(labels, label_ids(name, names))
        truth = self._truth[name]
        return dice(self.structure_volume(name) if name in self.state.objects else np.zeros_like(truth), truth)

    # ---- the one entry point for language ----
    def apply(self, utterance: str) -> Reply:
        """Parse and carry out one utterance; unknown or ambiguous ones change nothing."""
        started = time.perf_counter()
        measure = self.volume_dice if self.volumetric else self.dice
        active, before = self.state.active, measure()
        try:
            edit = cmd.parse(utterance)
            reply = self._carry_out(edit)
        except LimisError as refusal:
            reply = Reply(str(refusal), False)
        after = measure()
        before = before if self.state.active == active else None  # Dice of the same structure, or none to compare
        if after is not None and reply.scope is not None:
            what = "3D Dice" if self.volumetric else "Dice"
            change = f" {what} {before:.2f} -> {after:.2f}." if before is not None else f" {what} {after:.2f}."
            reply = dataclasses.replace(reply, text=reply.text + change, dice=after)
        self._log(utterance, reply, time.perf_counter() - started)
        return reply

    def _log(self, utterance: str, reply: Reply, seconds: float) -> None:
        if self.log is None:
            return
        mask = self.mask()
        row_mm, col_mm = self.current_image().geometry.pixel_spacing_mm
        self.log.write({
            "event": "command", "utterance": utterance, "edit": type(reply.edit).__name__ if reply.edit else None,
            "edit_args": dataclasses.asdict(reply.edit) if dataclasses.is_dataclass(reply.edit) else None,
            "changed": reply.changed, "scope": reply.scope, "reply": reply.text, "seconds": round(seconds, 4),
            "structure": self.state.active, "plane": self.view.plane, "slice": self.view.index,
            "mask_pixels": int(mask.sum()) if mask is not None else 0,
            "mask_area_mm2": float(mask.sum() * row_mm * col_mm) if mask is not None else 0.0,
            "voxels": int(self.structure_volume(self.state.active).sum()) if self.state.active in self.state.objects else 0,
            "dice": self.dice(), "dice_3d": self.volume_dice() if self.volumetric else None, "image": self.volume.key,
        })

    def _push(self, state: SessionState) -> None:
        self.history.append(state)
        self.future.clear()

    # ---- direct API (the demo's clicks and the tests use these too) ----
    def set_box(self, structure: str, box: Box) -> Reply:
        """Put a box for a structure on the current slice and segment it; on a volume, a structure's first
        box is propagated through the neighbouring slices as a detector's seed would be."""
        image = self.current_image()
        box = geo.clip_box(box, image.pixels.shape)
        state = self._ensure_object(self.state, structure)
        if self.volumetric and not state.objects[structure].masks:
            trace = self._trace(structure, detector=ManualDetector({structure: {self.view.index: [box]}}))
            if trace.found:
                self._push(self._store_trace(state, structure, trace))
                return Reply(f"Box set for {_label(structure)} and followed through {self._extent_text(structure)}.",
                             True, scope="volume")
        obj = state.objects[structure]
        obj = dataclasses.replace(obj, boxes=_dict_with(obj.boxes, self.slice_key, box),
                                  points=_dict_with(obj.points, self.slice_key, None))
        self._push(self._segment(_with(_with_object(state, structure, obj), active=structure), structure, self.slice_key))
        return Reply(f"Box set for {_label(structure)}{self._slice_note()}.", True, scope="slice")

    def add_point(self, x: float, y: float, positive: bool, structure: str | None = None) -> Reply:
        """A click on the current slice (positive: include); a first click on a new structure starts it."""
        name = structure or self.state.active
        if name is None:
            raise LimisError("No structure yet: name one first, e.g. 'left kidney'.")
        state = _with(self._ensure_object(self.state, name), active=name)
        first = self.volumetric and positive and not state.objects[name].masks
        click = ("point", float(x), float(y), bool(positive))
        state = self._slice_edit(state, name, self.slice_key, click)
        mask = state.objects[name].masks.get(self.slice_key)
        if first and mask is not None and mask.any():  # like a first box: follow it through the neighbours
            trace = self._trace(name, detector=ManualDetector({name: {self.view.index: [box_from_mask(mask)]}}))
            if trace.found:
                state = self._store_trace(state, name, trace)
                if self.slice_key in state.objects[name].masks:
                    state = self._slice_edit(state, name, self.slice_key, click)  # the click stays on its slice
                self._push(state)
                return Reply(f"Included the point ({x:.0f}, {y:.0f}) and followed {_label(name)} through "
                             f"{self._extent_text(name)}.", True, scope="volume")
        self._push(state)
        return Reply(f"{'Included' if positive else 'Excluded'} the point ({x:.0f}, {y:.0f}){self._slice_note()}.",
                     True, scope="slice")

    def undo(self) -> Reply:
        if len(self.history) == 1:
            return Reply("Nothing to undo.", False)
        self.future.append(self.history.pop())
        return Reply("Undone.", True, scope="undo")

    def redo(self) -> Reply:
        if not self.future:
            return Reply("Nothing to redo.", False)
        self.history.append(self.future.pop())
        return Reply("Redone.", True, scope="redo")

    # ---- edits ----
    def _carry_out(self, edit) -> Reply:
        handlers = {
            cmd.Query: self._query, cmd.Locate: self._locate, cmd.SliceExtent: self._extent, cmd.Scope: self._scope,
            cmd.ScaleBox: self._refine, cmd.Tighten: self._refine, cmd.MoveBox: self._refine,
            cmd.MoveEdge: self._refine, cmd.AddPoint: self._refine, cmd.Select: self._select,
            cmd.Navigate: self._navigate, cmd.SetPlane: self._plane, cmd.SetWindow: self._window,
            cmd.Control: self._control,
        }
        reply = handlers[type(edit)](edit)
        return dataclasses.replace(reply, edit=edit)

    def _require_active(self, structure: str | None = None) -> str:
        name = structure or self.state.active
        if name is None or name not in self.state.objects:
            raise LimisError("No structure yet: name one first, e.g. 'left kidney'.")
        return name

    def _ensure_object(self, state: SessionState, structure: str) -> SessionState:
        if structure in state.objects:
            return state
        label_id = max((o.label_id for o in state.objects.values()), default=0) + 1
        return _with_object(state, structure, ObjectState(label_id))

    def _segment(self, state: SessionState, name: str, key: SliceKey) -> SessionState:
        """Re-run the decoder for one structure on slice `key` (the embedding comes from the cache)."""
        obj = state.objects[name]
        box = obj.boxes.get(key)
        points = obj.points.get(key, ())
        if box is None and not points:
            return _with_object(state, name, dataclasses.replace(obj, masks=_dict_with(obj.masks, key, None)))
        prompt = Prompt(
            box=box,
            points=np.array([[x, y] for x, y, _ in points], dtype=np.float32).reshape(-1, 2),
            point_labels=np.array([label for _, _, label in points], dtype=np.int64),
        )
        result = self.cache.segmenter.segment(self.cache.get(self.image_at(key)), [prompt])[0]
        return _with_object(state, name, dataclasses.replace(obj, masks=_dict_with(obj.masks, key, result.mask)))

    # ---- 3D: the pipeline inside the session ----
    def _trace(self, structure: str, within: range | None = None, detector: Detector | None = None) -> StructureTrace:
        """The 3D pipeline for one structure in the view's plane, with the session's detector or the one given
        (a `ManualDetector` holding a box the user drew)."""
        detector = detector or self.detector
        if detector is None:
            raise LimisError("No detector is loaded: draw a box for the structure instead.")
        window = choose_window(self.volume, self.view.window)
        options = SegmentOptions(plane=Plane(self.view.plane))
        return GroundedPipeline(detector, self.cache).trace_structure(self.volume, structure, window, options,
                                                                      self.progress, within)

    def _store_trace(self, state: SessionState, structure: str, trace: StructureTrace) -> SessionState:
        """A fresh object from a 3D trace (largest connected component, as `limis segment` keeps), shown on the view."""
        plane = Plane(self.view.plane)
        volume = largest_component(trace.volume(self.volume.shape, plane))
        masks = {(plane.value, i): display_slice(volume, plane, i).copy() for i in trace.masks}
        masks = {key: view for key, view in masks.items() if view.any()}
        boxes = {(plane.value, i): box for i, box in trace.boxes.items() if (plane.value, i) in masks}
        state = self._ensure_object(state, structure)  # a structure asked again keeps its label id, nothing else
        obj = ObjectState(state.objects[structure].label_id, boxes=boxes, masks=masks)
        state = _with(_with_object(state, structure, obj), active=structure, last_edit=None, propagated=False)
        if self.slice_key not in masks:  # go where the structure is: its largest slice
            self.view.index = max(masks, key=lambda key: int(masks[key].sum()))[1]
        return state

    def _extent_text(self, structure: str, state: SessionState | None = None) -> str:
        obj = (state or self.state).objects[structure]
        indices = sorted(i for _, i in obj.masks)
        volume_ml = float(sum(int(m.sum()) for m in obj.masks.values())) * self.volume.voxel_volume_ml
        return (f"{self.view.plane} slices {indices[0]}-{indices[-1]} ({volume_ml:.1f} ml); "
                f"showing slice {self.view.index}")

    def _slice_note(self) -> str:
        return " (this slice only; say 'apply to all slices' to repeat it on every slice)" if self.volumetric else ""

    # ---- queries ----
    def _query(self, edit: cmd.Query) -> Reply:
        if edit.mode == "remove":
            missing = [s for s in edit.structures if s not in self.state.objects]
            if len(missing) == len(edit.structures):
                raise LimisError(f"{', '.join(map(_label, missing))} is not segmented; nothing removed.")
            objects = {n: o for n, o in self.state.objects.items() if n not in edit.structures}
            active = self.state.active if self.state.active in objects else next(iter(objects), None)
            self._push(_with(self.state, objects=objects, active=active, last_edit=None, propagated=False))
            return Reply(f"Removed {', '.join(map(_label, edit.structures))}.", True, scope="volume")
        if self.detector is None:
            raise LimisError("No detector is loaded: draw a box for the structure instead.")
        state = self.state if edit.mode == "add" else _with(self.state, objects={}, active=None)
        return self._find(state, edit.structures, None)

    def _locate(self, edit: cmd.Locate) -> Reply:
        """The user vouches for a region: search only there, with the detector's own presence threshold."""
        structures = edit.structures or self.looked_for or ((self.state.active,) if self.state.active else ())
        if not structures:
            raise LimisError("Say which structure is here, e.g. 'the left kidney is here'.")
        if self.detector is None:
            raise LimisError("No detector is loaded: draw a box for the structure instead.")
        count = slice_count(self.volume.shape, Plane(self.view.plane))
        index = self.view.index
        if edit.where == "here":
            within = range(max(0, index - 2), min(count, index + 3))
        else:
            if self.view.plane != Plane.AXIAL.value:
                raise LimisError("'look lower/higher' searches along the body axis: switch to the axial view.")
            within = range(index + 1, count) if edit.where == "superior" else range(0, index)  # RAS: +k is superior
            if not within:
                raise LimisError(f"There are no slices {'above' if edit.where == 'superior' else 'below'} this one.")
        state = _with(self.state, objects={n: o for n, o in self.state.objects.items() if n not in structures})
        return self._find(state, structures, within)

    def _find(self, state: SessionState, structures: tuple[str, ...], within: range | None) -> Reply:
        found, missing, seen_elsewhere = [], [], {}
        for structure in structures:
            if self.volumetric:
                trace = self._trace(structure, within)
                if trace.found:
                    state = self._store_trace(state, structure, trace)
                    found.append(structure)
                    if (where := elsewhere_text(trace.elsewhere)):
                        seen_elsewhere[structure] = where
                    continue
            elif (detections := self._detect_here(structure, strict=within is None)):
                state = self._store_slice_detections(state, structure, detections)
                found.append(structure)
                continue
            missing.append(structure)
        # a structure the detector does not report on this modality: "not found" would say nothing about the image
        refusals = {s: why for s in missing if (why := self.detector.refusal(s, self.volume.modality))}
        refused = "".join(f" {_label(s)}: {why}." for s, why in refusals.items())
        missing = [s for s in missing if s not in refusals]
        self.looked_for = tuple(missing)
        if not found:
            where = ("in this volume" if within is None and self.volumetric else "on this slice" if within is None
                     else f"{self.view.plane} slices {within.start}-{within.stop - 1}")
            advice = (f"{', '.join(map(_label, missing))} not found {where}. If you can see it, go to a slice where it "
                      "is and say 'it is here' (or say 'look lower' / 'look higher'), or draw a box." if missing else "")
            raise LimisError((advice + refused).strip())
        self._push(state)
        note = f" Not found: {', '.join(map(_label, missing))} (say 'it is here' on a slice that shows it)." if missing else ""
        note += refused
        note += "".join(f" {_label(s)}: {why}." for s in found if (why := self.detector.caveat(s, self.volume.modality)))
        note += "".join(f" {_label(s)}: {where}." for s, where in seen_elsewhere.items())
        if self.volumetric:
            extents = "; ".join(f"{_label(s)}: {self._extent_text(s, state)}" for s in found)
            return Reply(f"Segmented {extents} (left/right = patient's side).{note}", True, scope="volume")
        return Reply(f"Segmented {', '.join(map(_label, found))} (left/right = patient's side).{note}", True, scope="slice")

    def _detect_here(self, structure: str, strict: bool) -> list[Detection]:
        detections = detect_structure(self.detector, [self.current_image()], structure)[0]
        return [d for d in detections if d.score >= SegmentOptions().min_detection_score] if strict else detections

    def _store_slice_detections(self, state: SessionState, structure: str, detections: list[Detection]) -> SessionState:
        state = self._ensure_object(state, structure)
        boxes = tuple(d.box for d in detections)
        key = self.slice_key
        obj = dataclasses.replace(
            state.objects[structure],
            boxes=_dict_with(state.objects[structure].boxes, key, boxes[0]),
            points=_dict_with(state.objects[structure].points, key, None),
            candidates=_dict_with(state.objects[structure].candidates, key, boxes),
            choice=_dict_with(state.objects[structure].choice, key, 0),
        )
        return self._segment(_with(_with_object(state, structure, obj), active=structure, last_edit=None), structure, key)

    # ---- refinements on one slice, and their scope ----
    def _refine(self, edit) -> Reply:
        name = self._require_active()
        key = self.slice_key
        if key not in self.state.objects[name].masks and self.mask(name) is not None:
            raise LimisError(f"{_label(name)} was segmented in another plane; refine it in that view.")
        state = self._slice_edit(self.state, name, key, edit)
        self._push(_with(state, last_edit=SliceEdit(name, key, edit), propagated=False))
        return Reply(self._edit_text(edit) + self._slice_note() + ".", True, scope="slice")

    def _slice_edit(self, state: SessionState, name: str, key: SliceKey, edit) -> SessionState:
        """One edit on slice `key`: a new box or point there, then the decoder. Raises LimisError when it cannot apply."""
        obj = state.objects[name]
        image = self.image_at(key)
        box, mask = obj.boxes.get(key), obj.masks.get(key)
        if isinstance(edit, tuple):  # ("point", x, y, positive): a click
            _, x, y, positive = edit
            points = obj.points.get(key, ()) + ((x, y, int(positive)),)
            obj = dataclasses.replace(obj, points=_dict_with(obj.points, key, points))
        elif isinstance(edit, cmd.AddPoint):
            reference = box if box is not None else box_from_mask(mask) if mask is not None else None
            if reference is None:
                raise LimisError("Point edits need a box or a mask to refer to; name a structure first.")
            x, y = geo.choose_point(edit.region, edit.positive, reference, mask, image.pixels, image.geometry)
            points = obj.points.get(key, ()) + ((x, y, int(edit.positive)),)
            obj = dataclasses.replace(obj, points=_dict_with(obj.points, key, points))
        else:
            if box is None:
                raise LimisError(f"{_label(name)} has no box on this slice; name it again or draw a box.")
            obj = dataclasses.replace(obj, boxes=_dict_with(obj.boxes, key, self._edited_box(edit, box, mask, image)))
        return self._segment(_with_object(state, name, obj), name, key)

    def _edited_box(self, edit, box: Box, mask: np.ndarray | None, image) -> Box:
        shape = image.pixels.shape
        if isinstance(edit, cmd.ScaleBox):
            return geo.scale_box(box, edit.factor, shape)
        if isinstance(edit, cmd.Tighten):
            tight = box_from_mask(mask) if mask is not None else None
            if tight is None:
                raise LimisError("There is no mask to fit the box to yet.")
            x0, y0, x1, y1 = tight
            pad = 0.05 * max(x1 - x0, y1 - y0, 2.0)
            return geo.clip_box((x0 - pad, y0 - pad, x1 + pad, y1 + pad), shape)
        if isinstance(edit, cmd.MoveBox):
            step = geo.screen_step(edit.direction, image.geometry)
            if step is None:
                raise LimisError(f"'{edit.direction}' points through this {image.geometry.plane.value} slice; "
                                 "use 'next slice' / 'previous slice' to move along it.")
            return geo.move_box(box, step, edit.amount, edit.unit, image.geometry)
        step = geo.screen_step({"top": "up", "bottom": "down"}.get(edit.edge, edit.edge), image.geometry)
        if step is None:
            raise LimisError(f"The {edit.edge} edge is not in this slice's plane.")
        return geo.move_edge(box, step, edit.amount_mm, image.geometry)

    def _edit_text(self, edit) -> str:
        geometry = self.current_image().geometry
        if isinstance(edit, cmd.ScaleBox):
            return f"Made the box {'bigger' if edit.factor >= 1 else 'smaller'} by {abs(edit.factor - 1) * 100:.0f}%"
        if isinstance(edit, cmd.Tighten):
            return "Fitted the box tightly around the mask"
        if isinstance(edit, cmd.MoveBox):
            step = geo.screen_step(edit.direction, geometry)
            return f"Moved the box {edit.amount:g} {edit.unit} {_direction_text(edit.direction, step)}"
        if isinstance(edit, cmd.MoveEdge):
            step = geo.screen_step({"top": "up", "bottom": "down"}.get(edit.edge, edit.edge), geometry)
            verb = "Extended" if edit.amount_mm > 0 else "Pulled in"
            return f"{verb} the {_edge_text(edit.edge, step)} edge by {abs(edit.amount_mm):g} mm"
        x, y = self.state.objects[self.state.active].points[self.slice_key][-1][:2]
        where = " ".join(edit.region) or "centre"
        return f"{'Included' if edit.positive else 'Excluded'} the {where} part (point at x={x:.0f}, y={y:.0f})"

    def _scope(self, edit: cmd.Scope) -> Reply:
        if edit.which == "here":
            if not self.state.propagated:
                return Reply("The last change already applies to its slice only.", False)
            self.history.pop()  # the propagation; its slice edit stays
            self.future.clear()
            return Reply(f"Kept the change on {self.view.plane} slice {self.state.last_edit.key[1]} only.", True,
                         scope="slice")
        last = self.state.last_edit
        if last is None or last.structure not in self.state.objects:
            raise LimisError("There is no slice edit to repeat: refine one slice first (e.g. 'bigger'), then say "
                             "'apply to all slices'.")
        state = self.state
        keys = sorted(k for k in state.objects[last.structure].masks if k[0] == last.key[0] and k != last.key)
        changed = 0
        for key in keys:
            try:
                state = self._slice_edit(state, last.structure, key, last.edit)
                changed += 1
            except LimisError:  # e.g. no box on that slice: it keeps its mask
                continue
        if not changed:
            raise LimisError(f"{_label(last.structure)} has no other slices to apply that to.")
        self._push(_with(state, propagated=True))
        return Reply(f"Applied it to {changed} more slices of {_label(last.structure)} (say 'only here' or 'undo' to "
                     "take that back).", True, scope="all slices")

    def _extent(self, edit: cmd.SliceExtent) -> Reply:
        """Grow a structure past its end slice along the body axis (mask box carried slice to slice), or trim it."""
        name = self._require_active()
        if not self.volumetric or self.view.plane != Plane.AXIAL.value:
            raise LimisError("Growing or trimming along the body axis needs the axial view of a volume; on one slice "
                             "use 'extend the top edge' or 'include the lower part'.")
        obj = self.state.objects[name]
        indices = sorted(i for plane, i in obj.masks if plane == self.view.plane)
        if not indices:
            raise LimisError(f"{_label(name)} has no axial slices yet.")
        step = 1 if edit.direction == "superior" else -1  # canonical RAS: the axial index grows superiorly
        thickness = self.volume.spacing[2]
        count = (max(1, int(round(abs(edit.amount)))) if edit.unit == "slices"
                 else max(1, math.ceil(abs(edit.amount) / thickness - 1e-6)))
        end = indices[-1] if step == 1 else indices[0]
        word = "up" if step == 1 else "down"
        if edit.amount < 0:
            kept = indices[:-count] if step == 1 else indices[count:]
            if not kept:
                raise LimisError(f"Trimming {count} slices would remove all of {_label(name)}; say 'remove {_label(name)}'.")
            dropped = set(indices) - set(kept)
            obj = dataclasses.replace(obj, masks={k: v for k, v in obj.masks.items() if k[1] not in dropped},
                                      boxes={k: v for k, v in obj.boxes.items() if k[1] not in dropped},
                                      points={k: v for k, v in obj.points.items() if k[1] not in dropped})
            self.view.index = kept[-1] if step == 1 else kept[0]
            self._push(_with(_with_object(self.state, name, obj), last_edit=None, propagated=False))
            return Reply(f"Trimmed {len(dropped)} slices from the {'top' if step == 1 else 'bottom'} of {_label(name)}; "
                         f"showing slice {self.view.index}.", True, scope="slices")
        state, previous, added = self.state, obj.masks[(self.view.plane, end)], 0
        total = slice_count(self.volume.shape, Plane.AXIAL)
        for index in range(end + step, end + step * (count + 1), step):
            if not 0 <= index < total:
                break
            key = (self.view.plane, index)
            box = expand_box(box_from_mask(previous), SegmentOptions().propagation_margin, previous.shape)
            grown = dataclasses.replace(state.objects[name], boxes=_dict_with(state.objects[name].boxes, key, box),
                                        points=_dict_with(state.objects[name].points, key, None))
            state = self._segment(_with_object(state, name, grown), name, key)
            previous = state.objects[name].masks[key]
            if not previous.any():
                obj = state.objects[name]
                state = _with_object(state, name, dataclasses.replace(
                    obj, masks=_dict_with(obj.masks, key, None), boxes=_dict_with(obj.boxes, key, None)))
                break
            added, self.view.index = added + 1, index
        if not added:
            raise LimisError(f"Nothing of {_label(name)} continues {word} from slice {end}.")
        self._push(_with(state, last_edit=None, propagated=False))
        return Reply(f"Extended {_label(name)} {added} slices {word} (to slice {self.view.index}).", True, scope="slices")

    def _select(self, edit: cmd.Select) -> Reply:
        name = self._require_active()
        if edit.which == "other_side":
            return self._other_side(name)
        obj = self.state.objects[name]
        candidates = obj.candidates.get(self.slice_key, ())
        if len(candidates) < 2:
            raise LimisError(f"There is only one candidate for {_label(name)} on this slice.")
        current = obj.choice.get(self.slice_key, 0)
        areas = [(b[2] - b[0]) * (b[3] - b[1]) for b in candidates]
        chosen = {
            "other": (current + 1) % len(candidates),
            "bigger": int(np.argmax(areas)),
            "smaller": int(np.argmin(areas)),
            "index": edit.index,
        }[edit.which]
        if not 0 <= chosen < len(candidates):
            raise LimisError(f"There are only {len(candidates)} candidates.")
        obj = dataclasses.replace(obj, choice=_dict_with(obj.choice, self.slice_key, chosen),
                                  boxes=_dict_with(obj.boxes, self.slice_key, candidates[chosen]))
        self._push(self._segment(_with_object(self.state, name, obj), name, self.slice_key))
        return Reply(f"Switched to candidate {chosen + 1} of {len(candidates)}.", True, scope="slice")

    def _other_side(self, name: str) -> Reply:
        from limis import vocab

        other = vocab.other_side(name)
        if other is None:
            raise LimisError(f"{_label(name)} has no other side.")
        reply = self._query(cmd.Query((other,), "add"))
        objects = {n: o for n, o in self.state.objects.items() if n != name}
        self.history[-1] = _with(self.state, objects=objects, active=other)
        return dataclasses.replace(reply, text=f"Switched to the other side: {_label(other)} (patient's side). {reply.text}")

    # ---- the view (not edits: undo leaves it) ----
    def _navigate(self, edit: cmd.Navigate) -> Reply:
        count = slice_count(self.volume.shape, Plane(self.view.plane))
        target = self.view.index + edit.value if edit.kind == "relative" else edit.value
        if not 0 <= target < count:
            raise LimisError(f"Slice {target} is outside 0..{count - 1} of the {self.view.plane} view.")
        carried = None if self.volumetric else self._carried_to((self.view.plane, target))
        self.view.index = target
        if carried is not None:
            self._push(carried)
        return Reply(f"Now on {self.view.plane} slice {target} of {count - 1}.", True,
                     scope="slice" if carried is not None else None)

    def _carried_to(self, new_key: SliceKey) -> SessionState | None:
        """Per-slice sessions: the active structure's mask box carried from the slice we leave to `new_key`."""
        name = self.state.active
        if name is None:
            return None
        obj = self.state.objects[name]
        old_key = self.slice_key
        if new_key in obj.masks or old_key not in obj.masks:
            return None
        box = box_from_mask(obj.masks[old_key])
        if box is None:
            return None
        carried = expand_box(box, SegmentOptions().propagation_margin, obj.masks[old_key].shape)  # as the 3D pipeline does
        obj = dataclasses.replace(obj, boxes=_dict_with(obj.boxes, new_key, carried))
        return self._segment(_with_object(self.state, name, obj), name, new_key)

    def _plane(self, edit: cmd.SetPlane) -> Reply:
        count = slice_count(self.volume.shape, Plane(edit.plane))
        self.view.plane, self.view.index = edit.plane, count // 2
        return Reply(f"Showing the {edit.plane} view, slice {count // 2}.", True)

    def _window(self, edit: cmd.SetWindow) -> Reply:
        if self.volume.modality != "CT":
            raise LimisError(f"CT windows do not apply to this {self.volume.modality} image.")
        self.view.window = edit.name
        return Reply(f"Using the {edit.name} window.", True)

    def _control(self, edit: cmd.Control) -> Reply:
        if edit.action == "undo":
            return self.undo()
        if edit.action == "redo":
            return self.redo()
        if edit.action == "help":
            return Reply(f"I understand {cmd.UNDERSTOOD}. Left and right always mean the patient's side.", False)
        if edit.action == "reset":
            self._push(_with(self.state, objects={}, active=None, accepted=False, done=False, last_edit=None,
                             propagated=False))
            return Reply("Cleared every structure (say 'undo' to bring them back).", True, scope="volume")
        if edit.action == "accept":
            self._require_active()
            self._push(_with(self.state, accepted=True))
            return Reply(f"Accepted {_label(self.state.active)}.", True, scope="volume")
        self._push(_with(self.state, accepted=True, done=True))
        if not any(obj.masks for obj in self.state.objects.values()):
            return Reply("Done: nothing is segmented, so there is nothing to save.", True, scope="volume")
        return Reply("Done: the segmentation is ready to save.", True, scope="volume")


def _label(name: str | None) -> str:
    from limis.vocab import display_name

    return display_name(name) if name else "nothing"


def _direction_text(direction: str, step: tuple[int, int]) -> str:
    screen = {(-1, 0): "up", (1, 0): "down", (0, -1): "left", (0, 1): "right"}.get(tuple(step), "")
    if direction in ("left", "right"):
        return f"toward the patient's {direction} (screen {screen})"
    if direction in ("up", "down"):
        return f"{direction} on the screen"
    return f"{direction} (screen {screen})"


def _edge_text(edge: str, step: tuple[int, int]) -> str:
    if edge in ("left", "right"):
        screen = "right" if step[1] > 0 else "left"
        return f"patient's-{edge} (screen {screen})"
    return edge
