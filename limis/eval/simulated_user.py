"""Simulated users: a language user who says what a person would say, and the standard click user.

Both look at the current mask and the reference on one displayed slice (the reference's largest
axial slice) and act through the same `Session` API a person uses.

Language policy, in order (distances in mm on the slice), in the patient's frame:
1. the box centre is off by > max(3 mm, 15 % of the object) -> "move <dir> N mm" along the larger
   offset; screen left/right are said as the patient's side the geometry gives (screen right =
   patient's left on radiological axial views), screen up/down as the patient direction there
   ("move anteriorly 6 mm" on an axial view);
2. the box is > 15 % too large / too small (geometric mean of width and height ratios) ->
   "smaller/bigger by P%";
3. an edge is off by > 2 mm -> "extend/shrink the <edge> edge by N mm" (front/back/left/right on axial views);
4. otherwise the larger error region (missed vs extra pixels) -> "include/exclude the <region> part",
   the region named from its centroid relative to the box;
5. like a person, it says "undo" when its last command lowered Dice by more than 0.01, and never
   repeats a command it had to undo (then it has nothing more to say).
Click policy (NoC protocol): a click at the interior-most pixel (distance-transform maximum) of
the larger error region, positive on missed pixels, negative on extra ones.
Both start from the same prompt and stop early once Dice >= `stop_dice` (later turns keep that Dice).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from limis.imaging.display import Plane, SliceGeometry, display_slice
from limis.imaging.slice_image import Box, box_from_mask
from limis.interact.session import Session


@dataclass(frozen=True)
class Turn:
    turn: int
    utterance: str
    dice: float
    seconds: float


def reference_slice(labels: np.ndarray, ids: list[int]) -> int:
    """Axial index where the structure's reference area is largest."""
    return int(np.argmax(np.isin(labels, ids).sum(axis=(0, 1))))


def poor_box(truth: Box, geometry: SliceGeometry, scale: float = 1.4, shift_mm: float = 20.0) -> Box:
    """The ground-truth box grown by `scale` and shifted `shift_mm` toward the patient's right."""
    step = geometry.screen_direction("right") or (0, 0)
    row_mm, col_mm = geometry.pixel_spacing_mm
    cx = (truth[0] + truth[2]) / 2 + step[1] * shift_mm / col_mm
    cy = (truth[1] + truth[3]) / 2 + step[0] * shift_mm / row_mm
    hw, hh = (truth[2] - truth[0]) / 2 * scale, (truth[3] - truth[1]) / 2 * scale
    return cx - hw, cy - hh, cx + hw, cy + hh


def _side_word(screen_col_sign: int, geometry: SliceGeometry) -> str:
    """Patient side at the screen's left (-1) or right (+1) edge."""
    left = geometry.screen_direction("left")
    return "left" if left is not None and left[1] == screen_col_sign else "right"


def _vertical(screen_row_sign: int, geometry: SliceGeometry) -> str | None:
    """The patient direction toward the screen's top (-1) or bottom (+1) (anterior on axial views), or None."""
    return next((d for d in ("anterior", "posterior", "superior", "inferior")
                 if geometry.screen_direction(d) == (screen_row_sign, 0)), None)


def _vertical_move(screen_row_sign: int, geometry: SliceGeometry) -> str:
    """"anteriorly", "superiorly", ... (screen "up"/"down" where the view has no such axis)."""
    word = _vertical(screen_row_sign, geometry)
    return f"{word}ly" if word else ("up" if screen_row_sign < 0 else "down")


def _edge_word(screen_row_sign: int, geometry: SliceGeometry) -> str:
    """"front"/"back" for the anterior/posterior edge; "top"/"bottom" otherwise (the grammar's screen edges)."""
    word = _vertical(screen_row_sign, geometry)
    return {"anterior": "front", "posterior": "back"}.get(word or "", "top" if screen_row_sign < 0 else "bottom")


def next_utterance(mask: np.ndarray | None, box: Box | None, truth: np.ndarray, geometry: SliceGeometry) -> str | None:
    """What the language user says next, or None when nothing useful is left to say."""
    target = box_from_mask(truth)
    if target is None:
        return None
    if box is None:
        box = box_from_mask(mask) if mask is not None else None
        if box is None:
            return None
    row_mm, col_mm = geometry.pixel_spacing_mm
    width_mm, height_mm = (target[2] - target[0] + 1) * col_mm, (target[3] - target[1] + 1) * row_mm
    dx = ((target[0] + target[2]) - (box[0] + box[2])) / 2 * col_mm
    dy = ((target[1] + target[3]) - (box[1] + box[3])) / 2 * row_mm
    if max(abs(dx), abs(dy)) > max(3.0, 0.15 * max(width_mm, height_mm)):
        if abs(dx) >= abs(dy):
            return f"move {_side_word(1 if dx > 0 else -1, geometry)} {round(abs(dx))} mm"
        return f"move {_vertical_move(1 if dy > 0 else -1, geometry)} {round(abs(dy))} mm"
    ratio = float(np.sqrt(((box[2] - box[0] + 1) * col_mm / width_mm) * ((box[3] - box[1] + 1) * row_mm / height_mm)))
    if ratio > 1.15:
        return f"smaller by {round((1 - 1 / ratio) * 100)}%"
    if ratio < 0.87:
        return f"bigger by {round((1 / ratio - 1) * 100)}%"
    edges = {  # outward-positive error of each edge, mm, named in the patient's frame where the grammar has it
        _edge_word(-1, geometry): (box[1] - target[1]) * row_mm, _edge_word(1, geometry): (target[3] - box[3]) * row_mm,
        _side_word(-1, geometry): (box[0] - target[0]) * col_mm, _side_word(1, geometry): (target[2] - box[2]) * col_mm,
    }
    edge, error = max(edges.items(), key=lambda item: abs(item[1]))
    if abs(error) > 2.0:
        return f"{'extend' if error > 0 else 'shrink'} the {edge} edge by {round(abs(error))} mm"
    return _region_utterance(mask, truth, box, geometry)


def _region_utterance(mask: np.ndarray | None, truth: np.ndarray, box: Box, geometry: SliceGeometry) -> str | None:
    mask = np.zeros_like(truth) if mask is None else mask
    missed, extra = truth & ~mask, mask & ~truth
    error, verb = (missed, "include") if missed.sum() >= extra.sum() else (extra, "exclude")
    if error.sum() < max(3, 0.01 * truth.sum()):
        return None
    rows, cols = np.nonzero(error)
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    words = []
    if abs(rows.mean() - cy) > 0.2 * (box[3] - box[1]):
        words.append("upper" if rows.mean() < cy else "lower")
    if abs(cols.mean() - cx) > 0.2 * (box[2] - box[0]):
        words.append(_side_word(1 if cols.mean() > cx else -1, geometry))
    return f"{verb} the {' '.join(words) or 'middle'} part"


def next_click(mask: np.ndarray | None, truth: np.ndarray) -> tuple[float, float, bool] | None:
    """(x, y, positive) at the interior-most pixel of the larger error region; None if no error."""
    mask = np.zeros_like(truth) if mask is None else mask
    missed, extra = truth & ~mask, mask & ~truth
    error, positive = (missed, True) if missed.sum() >= extra.sum() else (extra, False)
    if not error.any():
        return None
    labelled, count = ndimage.label(error)
    largest = labelled == (1 + int(np.argmax(ndimage.sum(error, labelled, range(1, count + 1)))))
    depth = ndimage.distance_transform_edt(np.pad(largest, 1))[1:-1, 1:-1]
    row, col = np.unravel_index(int(np.argmax(depth)), depth.shape)
    return float(col), float(row), positive


def run_user(session: Session, structure: str, truth: np.ndarray, start: Box, kind: str, turns: int,
             stop_dice: float = 0.9) -> list[Turn]:
    """Play one simulated user for up to `turns` interactions; turn 0 is the start prompt."""
    session.set_box(structure, start)
    history = [Turn(0, "start box", float(session.dice(structure)), 0.0)]
    undone: set[str] = set()
    for turn in range(1, turns + 1):
        if history[-1].dice >= stop_dice:
            history.append(Turn(turn, "(accepted)", history[-1].dice, 0.0))
            continue
        began = time.perf_counter()
        said = _act(session, structure, truth, kind, history, undone)
        history.append(Turn(turn, said or "(nothing to say)", float(session.dice(structure)), time.perf_counter() - began))
    return history


def _act(session: Session, structure: str, truth: np.ndarray, kind: str, history: list[Turn], undone: set[str]) -> str | None:
    """Carry out one interaction of the given user kind; returns what was said or clicked."""
    if kind == "clicks":
        click = next_click(session.mask(structure), truth)
        if click is None:
            return None
        session.add_point(*click, structure=structure)
        return f"click ({click[0]:.0f}, {click[1]:.0f}) {'+' if click[2] else '-'}"
    if len(history) >= 2 and history[-1].dice < history[-2].dice - 0.01 and history[-1].utterance not in undone:
        undone.add(history[-1].utterance)
        session.apply("undo")
        return "undo"
    said = next_utterance(session.mask(structure), session.box(structure), truth, session.current_image().geometry)
    if said is None or said in undone:
        return None
    session.apply(said)
    return said


def truth_on_slice(labels: np.ndarray, ids: list[int], index: int) -> np.ndarray:
    return np.isin(display_slice(labels, Plane.AXIAL, index), ids)


def interactions_to_reach(history: list[Turn], threshold: float) -> int | None:
    """NoI@threshold: the first turn whose Dice reaches it (0 = the start already does), None if never."""
    for turn in history:
        if turn.dice >= threshold:
            return turn.turn
    return None
