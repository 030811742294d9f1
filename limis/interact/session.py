"""One interactive session on one image: all state, full undo/redo, edits re-run only the decoder.

The CLI chat, the demo and simulated users all drive this API. Models are shared and state-free;
everything that changes lives in `SessionState` snapshots, so undo restores exactly.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import numpy as np

from limis.detect.base import Detection
from limis.errors import LimisError
from limis.imaging.display import Plane, display_slice, insert_display_slice, slice_count
from limis.imaging.overlap import dice
from limis.imaging.slice_image import Box, box_from_mask
from limis.imaging.volume import Volume
from limis.interact import commands as cmd
from limis.interact import geometry as geo
from limis.interact.log import InteractionLog
from limis.pipeline.grounded import SegmentOptions, detect_structure, expand_box
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
class SessionState:
    plane: str
    index: int
    window: str | None
    active: str | None = None
    objects: dict[str, ObjectState] = field(default_factory=dict)
    accepted: bool = False
    done: bool = False


@dataclass(frozen=True)
class Reply:
    """What a command did: a short sentence for chat/TTS, whether state changed, Dice if known."""

    text: str
    changed: bool
    edit: object | None = None
    dice: float | None = None


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
    ) -> None:
        self.volume = volume
        self.cache = cache
        self.detector = detector
        self.reference = reference
        self.log = log
        count = slice_count(volume.shape, plane)
        start = count // 2 if index is None else index
        self.history: list[SessionState] = [SessionState(Plane(plane).value, start, window)]
        self.future: list[SessionState] = []

    # ---- state access ----
    @property
    def state(self) -> SessionState:
        return self.history[-1]

    @property
    def slice_key(self) -> SliceKey:
        return self.state.plane, self.state.index

    def current_image(self):
        window = choose_window(self.volume, self.state.window)
        return slice_image(self.volume, Plane(self.state.plane), self.state.index, window)

    def mask(self, structure: str | None = None) -> np.ndarray | None:
        """Boolean mask (display rows, cols) of a structure on the current slice."""
        name = structure or self.state.active
        obj = self.state.objects.get(name) if name else None
        return obj.masks.get(self.slice_key) if obj else None

    def box(self, structure: str | None = None) -> Box | None:
        name = structure or self.state.active
        obj = self.state.objects.get(name) if name else None
        return obj.boxes.get(self.slice_key) if obj else None

    def labelmap(self) -> tuple[np.ndarray, dict[int, str]]:
        """Canonical 3D labelmap of every mask on every slice, and its label table."""
        labelmap = np.zeros(self.volume.shape, dtype=np.uint16)
        labels = {}
        for name, obj in self.state.objects.items():
            if not obj.masks:
                continue
            labels[obj.label_id] = name
            for (plane, index), view in obj.masks.items():
                current = display_slice(labelmap, Plane(plane), index).copy()
                current[(view > 0) & (current == 0)] = obj.label_id
                insert_display_slice(labelmap, Plane(plane), index, current)
        return labelmap, labels

    def dice(self, structure: str | None = None) -> float | None:
        """2D Dice of a structure on the current slice against the reference, None without one."""
        name = structure or self.state.active
        if self.reference is None or name is None:
            return None
        labels, names = self.reference
        ids = label_ids(name, names)
        truth = np.isin(display_slice(labels, Plane(self.state.plane), self.state.index), ids)
        mask = self.mask(name)
        return dice(np.zeros_like(truth) if mask is None else mask, truth)

    # ---- the one entry point for language ----
    def apply(self, utterance: str) -> Reply:
        """Parse and carry out one utterance; unknown or ambiguous ones change nothing."""
        started = time.perf_counter()
        before = self.dice()
        try:
            edit = cmd.parse(utterance)
            reply = self._carry_out(edit)
        except LimisError as refusal:
            reply = Reply(str(refusal), False)
        after = self.dice()
        if after is not None and reply.changed:
            change = f" Dice {before:.2f} -> {after:.2f}." if before is not None else f" Dice {after:.2f}."
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
            "changed": reply.changed, "reply": reply.text, "seconds": round(seconds, 4),
            "structure": self.state.active, "plane": self.state.plane, "slice": self.state.index,
            "mask_pixels": int(mask.sum()) if mask is not None else 0,
            "mask_area_mm2": float(mask.sum() * row_mm * col_mm) if mask is not None else 0.0,
            "dice": reply.dice if reply.dice is not None else self.dice(), "image": self.volume.key,
        })

    def _push(self, state: SessionState) -> None:
        self.history.append(state)
        self.future.clear()

    # ---- direct API (the demo's clicks and the tests use these too) ----
    def set_box(self, structure: str, box: Box) -> Reply:
        """Put a box for a structure on the current slice and segment it."""
        image = self.current_image()
        state = self._ensure_object(self.state, structure)
        obj = state.objects[structure]
        box = geo.clip_box(box, image.pixels.shape)
        obj = dataclasses.replace(obj, boxes=_dict_with(obj.boxes, self.slice_key, box),
                                  points=_dict_with(obj.points, self.slice_key, None))
        self._push(self._segment(_with(_with_object(state, structure, obj), active=structure), structure))
        return Reply(f"Box set for {_label(structure)}.", True)

    def add_point(self, x: float, y: float, positive: bool, structure: str | None = None) -> Reply:
        name = self._require_active(structure)
        obj = self.state.objects[name]
        points = obj.points.get(self.slice_key, ()) + ((float(x), float(y), int(positive)),)
        obj = dataclasses.replace(obj, points=_dict_with(obj.points, self.slice_key, points))
        self._push(self._segment(_with_object(self.state, name, obj), name))
        return Reply(f"{'Included' if positive else 'Excluded'} the point ({x:.0f}, {y:.0f}).", True)

    def undo(self) -> Reply:
        if len(self.history) == 1:
            return Reply("Nothing to undo.", False)
        self.future.append(self.history.pop())
        return Reply("Undone.", True)

    def redo(self) -> Reply:
        if not self.future:
            return Reply("Nothing to redo.", False)
        self.history.append(self.future.pop())
        return Reply("Redone.", True)

    # ---- edits ----
    def _carry_out(self, edit) -> Reply:
        handlers = {
            cmd.Query: self._query, cmd.ScaleBox: self._scale, cmd.Tighten: self._tighten, cmd.MoveBox: self._move,
            cmd.MoveEdge: self._edge, cmd.AddPoint: self._point, cmd.Select: self._select,
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

    def _require_box(self) -> tuple[str, Box]:
        name = self._require_active()
        box = self.box(name)
        if box is None:
            raise LimisError(f"{_label(name)} has no box on this slice; name it again or draw a box.")
        return name, box

    def _ensure_object(self, state: SessionState, structure: str) -> SessionState:
        if structure in state.objects:
            return state
        label_id = max((o.label_id for o in state.objects.values()), default=0) + 1
        return _with_object(state, structure, ObjectState(label_id))

    def _segment(self, state: SessionState, name: str) -> SessionState:
        """Re-run the decoder for one structure on the state's slice (the embedding comes from the cache)."""
        key = (state.plane, state.index)
        obj = state.objects[name]
        box = obj.boxes.get(key)
        points = obj.points.get(key, ())
        if box is None and not points:
            return _with_object(state, name, dataclasses.replace(obj, masks=_dict_with(obj.masks, key, None)))
        window = choose_window(self.volume, state.window)
        image = slice_image(self.volume, Plane(state.plane), state.index, window)
        prompt = Prompt(
            box=box,
            points=np.array([[x, y] for x, y, _ in points], dtype=np.float32).reshape(-1, 2),
            point_labels=np.array([label for _, _, label in points], dtype=np.int64),
        )
        result = self.cache.segmenter.segment(self.cache.get(image), [prompt])[0]
        return _with_object(state, name, dataclasses.replace(obj, masks=_dict_with(obj.masks, key, result.mask)))

    def _box_edit(self, name: str, box: Box, text: str) -> Reply:
        obj = self.state.objects[name]
        obj = dataclasses.replace(obj, boxes=_dict_with(obj.boxes, self.slice_key, box))
        self._push(self._segment(_with_object(self.state, name, obj), name))
        return Reply(text, True)

    def _query(self, edit: cmd.Query) -> Reply:
        if edit.mode == "remove":
            missing = [s for s in edit.structures if s not in self.state.objects]
            if len(missing) == len(edit.structures):
                raise LimisError(f"{', '.join(map(_label, missing))} is not segmented; nothing removed.")
            objects = {n: o for n, o in self.state.objects.items() if n not in edit.structures}
            active = self.state.active if self.state.active in objects else next(iter(objects), None)
            self._push(_with(self.state, objects=objects, active=active))
            return Reply(f"Removed {', '.join(map(_label, edit.structures))}.", True)
        if self.detector is None:
            raise LimisError("No detector is loaded: draw a box for the structure instead.")
        state = self.state if edit.mode == "add" else _with(self.state, objects={}, active=None)
        image = self.current_image()
        found, missing = [], []
        for structure, detections in zip(edit.structures, self._detect_each(image, edit.structures)):
            if not detections:
                missing.append(structure)
                continue
            state = self._ensure_object(state, structure)
            obj = state.objects[structure]
            boxes = tuple(d.box for d in detections)
            obj = dataclasses.replace(
                obj,
                boxes=_dict_with(obj.boxes, self.slice_key, boxes[0]),
                points=_dict_with(obj.points, self.slice_key, None),
                candidates=_dict_with(obj.candidates, self.slice_key, boxes),
                choice=_dict_with(obj.choice, self.slice_key, 0),
            )
            state = self._segment(_with(_with_object(state, structure, obj), active=structure), structure)
            found.append(structure)
        if not found:
            raise LimisError(f"{', '.join(map(_label, missing))} not found on this slice "
                             f"({self.state.plane} {self.state.index}); try another slice.")
        self._push(state)
        note = f" Not found here: {', '.join(map(_label, missing))}." if missing else ""
        return Reply(f"Segmented {', '.join(map(_label, found))} (left/right = patient's side).{note}", True)

    def _detect_each(self, image, structures) -> list[list[Detection]]:
        return [detect_structure(self.detector, [image], s)[0] for s in structures]

    def _scale(self, edit: cmd.ScaleBox) -> Reply:
        name, box = self._require_box()
        bigger = edit.factor >= 1
        percent = abs(edit.factor - 1) * 100
        text = f"Made the box {'bigger' if bigger else 'smaller'} by {percent:.0f}%."
        return self._box_edit(name, geo.scale_box(box, edit.factor, self.current_image().pixels.shape), text)

    def _tighten(self, edit: cmd.Tighten) -> Reply:
        name, box = self._require_box()
        mask = self.mask(name)
        tight = box_from_mask(mask) if mask is not None else None
        if tight is None:
            raise LimisError("There is no mask to fit the box to yet.")
        x0, y0, x1, y1 = tight
        pad = 0.05 * max(x1 - x0, y1 - y0, 2.0)
        return self._box_edit(name, geo.clip_box((x0 - pad, y0 - pad, x1 + pad, y1 + pad), mask.shape),
                              "Fitted the box tightly around the mask.")

    def _move(self, edit: cmd.MoveBox) -> Reply:
        name, box = self._require_box()
        image = self.current_image()
        step = geo.screen_step(edit.direction, image.geometry)
        if step is None:
            raise LimisError(f"'{edit.direction}' points through this {self.state.plane} slice; "
                             "use 'next slice' / 'previous slice' to move along it.")
        moved = geo.move_box(box, step, edit.amount, edit.unit, image.geometry)
        return self._box_edit(name, moved, f"Moved the box {edit.amount:g} {edit.unit} {_direction_text(edit.direction, step)}.")

    def _edge(self, edit: cmd.MoveEdge) -> Reply:
        name, box = self._require_box()
        image = self.current_image()
        step = geo.screen_step({"top": "up", "bottom": "down"}.get(edit.edge, edit.edge), image.geometry)
        if step is None:
            raise LimisError(f"The {edit.edge} edge is not in this slice's plane.")
        verb = "Extended" if edit.amount_mm > 0 else "Pulled in"
        return self._box_edit(name, geo.move_edge(box, step, edit.amount_mm, image.geometry),
                              f"{verb} the {_edge_text(edit.edge, step)} edge by {abs(edit.amount_mm):g} mm.")

    def _point(self, edit: cmd.AddPoint) -> Reply:
        name = self._require_active()
        image = self.current_image()
        box = self.box(name)
        mask = self.mask(name)
        if box is None:
            box = box_from_mask(mask) if mask is not None else None
        if box is None:
            raise LimisError("Point edits need a box or a mask to refer to; name a structure first.")
        x, y = geo.choose_point(edit.region, edit.positive, box, mask, image.pixels, image.geometry)
        self.add_point(x, y, edit.positive, name)
        where = " ".join(edit.region) or "centre"
        return Reply(f"{'Included' if edit.positive else 'Excluded'} the {where} part (point at x={x:.0f}, y={y:.0f}).", True)

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
        self._push(self._segment(_with_object(self.state, name, obj), name))
        return Reply(f"Switched to candidate {chosen + 1} of {len(candidates)}.", True)

    def _other_side(self, name: str) -> Reply:
        from limis import vocab

        other = vocab.other_side(name)
        if other is None:
            raise LimisError(f"{_label(name)} has no other side.")
        reply = self._query(cmd.Query((other,), "add"))
        objects = {n: o for n, o in self.state.objects.items() if n != name}
        self.history[-1] = _with(self.state, objects=objects, active=other)
        return dataclasses.replace(reply, text=f"Switched to the other side: {_label(other)} (patient's side).")

    def _navigate(self, edit: cmd.Navigate) -> Reply:
        count = slice_count(self.volume.shape, Plane(self.state.plane))
        target = self.state.index + edit.value if edit.kind == "relative" else edit.value
        if not 0 <= target < count:
            raise LimisError(f"Slice {target} is outside 0..{count - 1} of the {self.state.plane} view.")
        state = _with(self.state, index=target)
        state = self._carry_to(state)
        self._push(state)
        return Reply(f"Now on {self.state.plane} slice {target} of {count - 1}.", True)

    def _carry_to(self, state: SessionState) -> SessionState:
        """Propagate the active structure's mask box from the slice we left to the new one."""
        name = state.active
        if name is None:
            return state
        obj = state.objects[name]
        new_key, old_key = (state.plane, state.index), self.slice_key
        if new_key in obj.masks or old_key not in obj.masks:
            return state
        box = box_from_mask(obj.masks[old_key])
        if box is None:
            return state
        carried = expand_box(box, SegmentOptions().propagation_margin, obj.masks[old_key].shape)  # as the 3D pipeline does
        obj = dataclasses.replace(obj, boxes=_dict_with(obj.boxes, new_key, carried))
        return self._segment(_with_object(state, name, obj), name)

    def _plane(self, edit: cmd.SetPlane) -> Reply:
        count = slice_count(self.volume.shape, Plane(edit.plane))
        self._push(_with(self.state, plane=edit.plane, index=count // 2))
        return Reply(f"Showing the {edit.plane} view, slice {count // 2}.", True)

    def _window(self, edit: cmd.SetWindow) -> Reply:
        if self.volume.modality != "CT":
            raise LimisError(f"CT windows do not apply to this {self.volume.modality} image.")
        self._push(_with(self.state, window=edit.name))
        return Reply(f"Using the {edit.name} window.", True)

    def _control(self, edit: cmd.Control) -> Reply:
        if edit.action == "undo":
            return self.undo()
        if edit.action == "redo":
            return self.redo()
        if edit.action == "reset":
            self._push(_with(self.state, objects={}, active=None, accepted=False, done=False))
            return Reply("Cleared every structure (say 'undo' to bring them back).", True)
        if edit.action == "accept":
            self._require_active()
            self._push(_with(self.state, accepted=True))
            return Reply(f"Accepted {_label(self.state.active)}.", True)
        if edit.action == "help":
            return Reply(f"I understand {cmd.UNDERSTOOD}. Left and right always mean the patient's side.", False)
        self._push(_with(self.state, accepted=True, done=True))
        if not any(obj.masks for obj in self.state.objects.values()):
            return Reply("Done: nothing is segmented, so there is nothing to save.", True)
        return Reply("Done: the segmentation is ready to save.", True)


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
