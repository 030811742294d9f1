"""Simulated users of a 3D session: a language user, and the click and box baselines.

Each robot sees what a person sees (the overlay on every slice, the box drawn on the shown slice,
the displayed pixels) and compares it with the reference it holds privately, like the click robots
of interactive-segmentation benchmarks. It acts only through `Screen`: words for the language user,
clicks or boxes for the baselines, and "go to slice N" (the slider) for all three. Nothing of the
reference reaches the session.

Per turn (one interaction; moving the slider is free):
- language: "undo" when its last words lowered 3D Dice by > 0.005 (never repeating that kind of edit
  there); a missed structure, or a mask that does not touch it -> go to its largest slice, "the
  <structure> is here" (once); a z-extent off by > 1 slice ->
  "extend up/down N mm" or "trim the top/bottom N mm"; after an in-plane edit that helped, and when
  at least half of the structure's other slices call for the same kind of edit -> "apply to all
  slices"; otherwise the slice with the most wrong voxels and the 2D policy of `simulated_user`
  there ("move left 6 mm", "smaller by 20%", "extend the top edge by 3 mm", "include the upper part"),
  or on the next-worst of the five worst slices when it has nothing new to say on one.
  Directions are the patient's ("move anteriorly 6 mm", "shrink the front edge", "extend up" = superiorly).
  Realism: step sizes are said with log-normal noise (sigma 0.25) and rounded as people round; one
  utterance in ten has a wrong direction word (left/right, front/back, up/down swapped), which the
  undo rule usually takes back.
- clicks: on the slice with the most wrong voxels, one click at the interior-most pixel of its
  largest error region (positive on missed, negative on extra pixels; the NoC protocol).
- boxes: on the worst slice it has not boxed yet, the reference's tight box with up to 2 pixels of
  noise per side (the same box again would give the same mask).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

import numpy as np

from limis.errors import LimisError
from limis.imaging.display import Plane, SliceGeometry, display_slice
from limis.imaging.overlap import dice
from limis.imaging.slice_image import Box, box_from_mask
from limis.interact.session import Reply, Session

USERS = ("language", "clicks", "boxes")
WRONG_WORDS = {"left": "right", "right": "left", "up": "down", "down": "up", "anteriorly": "posteriorly",
               "posteriorly": "anteriorly", "front": "back", "back": "front", "top": "bottom", "bottom": "top"}


class Screen:
    """The session as a user meets it: three ways in (words, clicks, boxes) and what the viewer shows.

    `seconds` accumulates the time the session spent answering.
    """

    def __init__(self, session: Session) -> None:
        self._session = session
        self.seconds = 0.0

    def _timed(self, call) -> Reply:
        began = time.perf_counter()
        try:
            return call()
        except LimisError as refusal:  # the demo shows these as a warning line
            return Reply(str(refusal), False)
        finally:
            self.seconds += time.perf_counter() - began

    def say(self, words: str) -> Reply:
        return self._timed(lambda: self._session.apply(words))

    def click(self, structure: str, x: float, y: float, positive: bool) -> Reply:
        return self._timed(lambda: self._session.add_point(x, y, positive, structure))

    def draw_box(self, structure: str, box: Box) -> Reply:
        return self._timed(lambda: self._session.set_box(structure, box))

    def go_to(self, index: int) -> None:
        if index != self._session.view.index:
            self.say(f"go to slice {index}")

    @property
    def shown(self) -> int:
        return self._session.view.index

    def overlay(self, structure: str) -> np.ndarray:
        """The structure's mask on every axial slice (what scrolling through the viewer shows), canonical (I, J, K)."""
        if structure not in self._session.state.objects:
            return np.zeros(self._session.volume.shape, dtype=bool)
        return self._session.structure_volume(structure)

    def drawn_box(self, structure: str) -> Box | None:
        return self._session.box(structure)

    def geometry(self, index: int) -> SliceGeometry:
        return self._session.image_at((Plane.AXIAL.value, index)).geometry

    @property
    def slice_mm(self) -> float:
        return float(self._session.volume.spacing[2])


@dataclass
class Robot:
    """One simulated user for one structure; `truth` is its private reference (canonical bool volume)."""

    structure: str
    truth: np.ndarray
    rng: np.random.Generator
    history: list[float] = field(default_factory=list)  # 3D Dice after each turn, turn 0 first

    def act(self, screen: Screen) -> str | None:
        """Carry out one interaction; what was said or done, or None when this user has nothing left to do."""
        raise NotImplementedError

    def ranked_slices(self, prediction: np.ndarray, limit: int = 5) -> list[int]:
        """Up to `limit` axial indices with wrong voxels, the worst first (a person scrolls to the worst few)."""
        wrong = (prediction ^ self.truth).sum(axis=(0, 1))
        return [int(k) for k in np.argsort(-wrong, kind="stable")[:limit] if wrong[k] > 0]

    def on_slice(self, volume: np.ndarray, index: int) -> np.ndarray:
        return display_slice(volume, Plane.AXIAL, index)


class ClickUser(Robot):
    def act(self, screen: Screen) -> str | None:
        from limis.eval.simulated_user import next_click

        prediction = screen.overlay(self.structure)
        worst = self.ranked_slices(prediction, limit=1)
        if not worst:
            return None
        index = worst[0]
        click = next_click(self.on_slice(prediction, index), self.on_slice(self.truth, index))
        if click is None:
            return None
        screen.go_to(index)
        screen.click(self.structure, *click)
        return f"slice {index}: click ({click[0]:.0f}, {click[1]:.0f}) {'+' if click[2] else '-'}"


@dataclass
class BoxUser(Robot):
    boxed: set[int] = field(default_factory=set)  # a slice's tight box, drawn again, gives the same mask

    def act(self, screen: Screen) -> str | None:
        prediction = screen.overlay(self.structure)
        fresh = [k for k in self.ranked_slices(prediction, limit=prediction.shape[2]) if k not in self.boxed
                 and self.on_slice(self.truth, k).any()]
        if not fresh:
            return None
        index = fresh[0]
        self.boxed.add(index)
        target = box_from_mask(self.on_slice(self.truth, index))
        noisy = tuple(float(v) + float(self.rng.integers(-2, 3)) for v in target)
        screen.go_to(index)
        screen.draw_box(self.structure, noisy)  # type: ignore[arg-type]
        return f"slice {index}: box ({', '.join(f'{v:.0f}' for v in noisy)})"


@dataclass
class LanguageUser(Robot):
    wrong_word_rate: float = 0.1
    step_noise: float = 0.25
    avoided: set[tuple[int | None, str]] = field(default_factory=set)  # (slice or None, words) it had to undo
    last: tuple[int | None, str] | None = None  # (slice, words) of its last edit; slice None along the body axis
    looked: bool = False

    def act(self, screen: Screen) -> str | None:
        if len(self.history) >= 2 and self.history[-1] < self.history[-2] - 0.005 and self.last is not None:
            self.avoided.add(self.last)
            self.last = None
            screen.say("undo")
            return "undo"
        prediction = screen.overlay(self.structure)
        if not (prediction & self.truth).any():  # nothing shown, or something else shown: point at it
            return self._find(screen)
        extent = self._extent_words(prediction, screen.slice_mm)
        if extent is not None and (None, _kind(extent)) not in self.avoided:
            said = self._say(screen, extent)
            self.last = (None, _kind(extent))
            return said
        if self.last is not None and self.last[0] is not None and len(self.history) >= 2 \
                and self.history[-1] > self.history[-2] and self._systematic(screen, prediction, self.last):
            self.last = (None, "apply to all slices")  # undone like any edit if it made things worse
            screen.say("apply to all slices")
            return "apply to all slices"
        for index in self.ranked_slices(prediction):
            words = self._in_plane_words(screen, prediction, index)
            if words is not None and (index, _kind(words)) not in self.avoided:
                break
        else:
            return None
        screen.go_to(index)
        said = self._say(screen, words)
        self.last = (index, _kind(words))
        return f"slice {index}: {said}"

    def _find(self, screen: Screen) -> str | None:
        if self.looked:
            return None  # words cannot point at pixels: what a language-only user cannot recover
        self.looked = True
        index = int(np.argmax(self.truth.sum(axis=(0, 1))))
        screen.go_to(index)
        from limis.vocab import display_name

        said = f"the {display_name(self.structure).lower()} is here"
        screen.say(said)
        return f"slice {index}: {said}"

    def _extent_words(self, prediction: np.ndarray, slice_mm: float) -> str | None:
        truth_z = np.flatnonzero(self.truth.any(axis=(0, 1)))
        shown_z = np.flatnonzero(prediction.any(axis=(0, 1)))
        errors = {  # slices to add (> 0) or remove (< 0) at each end
            "up": int(truth_z[-1] - shown_z[-1]), "down": int(shown_z[0] - truth_z[0]),
        }
        end, error = max(errors.items(), key=lambda item: abs(item[1]))
        if abs(error) <= 1:
            return None
        millimetres = max(1, round(abs(error) * slice_mm))  # `_say` adds the noise
        if error > 0:
            return f"extend {end} {millimetres} mm"
        return f"trim the {'top' if end == 'up' else 'bottom'} {millimetres} mm"

    def _in_plane_words(self, screen: Screen, prediction: np.ndarray, index: int) -> str | None:
        from limis.eval.simulated_user import next_utterance

        mask = self.on_slice(prediction, index)
        box = screen.drawn_box(self.structure) if screen.shown == index else None
        return next_utterance(mask if mask.any() else None, box, self.on_slice(self.truth, index),
                              screen.geometry(index))

    def _systematic(self, screen: Screen, prediction: np.ndarray, last: tuple[int | None, str]) -> bool:
        """Whether at least half of the other slices showing both masks need the same kind of edit."""
        kind = last[1]
        both = [z for z in np.flatnonzero(prediction.any(axis=(0, 1)) & self.truth.any(axis=(0, 1))) if z != last[0]]
        if not both:
            return False
        alike = sum(_kind(self._in_plane_words(screen, prediction, int(z)) or "") == kind for z in both)
        return alike >= len(both) / 2

    def _say(self, screen: Screen, words: str) -> str:
        """Say `words` as a person would: rounded, noisy amounts and now and then a wrong direction word."""
        said = re.sub(r"(\d+)( mm|%)", lambda m: f"{self._noisy(float(m.group(1)), m.group(2) == '%')}{m.group(2)}", words)
        if self.rng.random() < self.wrong_word_rate:
            said = re.sub(rf"\b({'|'.join(WRONG_WORDS)})\b", lambda m: WRONG_WORDS[m.group(1)], said, count=1)
        screen.say(said)
        return said

    def _noisy(self, amount: float, percent: bool = False) -> int:
        value = amount * float(np.exp(self.rng.normal(0.0, self.step_noise)))
        unit = 5 if percent or value > 20 else 1  # "about 25%", "30 mm", "4 mm"
        return max(unit, int(round(value / unit)) * unit)


def _kind(words: str) -> str:
    """An edit without its amount: 'move left 6 mm' -> 'move left'."""
    return re.sub(r"\s*(by\s*)?\d+\s*(mm|%)?", "", words).strip()


def make_robot(user: str, structure: str, truth: np.ndarray, seed: int) -> Robot:
    kinds = {"language": LanguageUser, "clicks": ClickUser, "boxes": BoxUser}
    return kinds[user](structure, truth, np.random.default_rng(seed))


def play(robot: Robot, screen: Screen, turns: int, stop_dice: float) -> list[dict]:
    """Up to `turns` interactions after the start; one row per turn (0 = the start) with 3D Dice and seconds."""
    robot.history = [dice(screen.overlay(robot.structure), robot.truth)]
    rows = [{"turn": 0, "action": "start (text query)", "dice": robot.history[0], "seconds": 0.0}]
    for turn in range(1, turns + 1):
        if robot.history[-1] >= stop_dice:
            action, seconds = "(accepted)", 0.0
        else:
            before = screen.seconds
            action = robot.act(screen) or "(nothing to do)"
            seconds = screen.seconds - before
        robot.history.append(dice(screen.overlay(robot.structure), robot.truth))
        rows.append({"turn": turn, "action": action, "dice": robot.history[-1], "seconds": seconds})
    return rows
