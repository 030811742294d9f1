"""The command language: typed (or transcribed) utterances -> edits. Rule-based, with a clear grammar.

Grammar (case-insensitive; fillers like "please", "can you", "now" are ignored):
  query      := ["segment"|"show"|"find"...] STRUCTURES (added to what is segmented) | "also" STRUCTURES
              | "only" STRUCTURES (replaces everything) | ("remove"|"delete") STRUCTURE
  locate     := [STRUCTURE] "is here" | "it is here/there" | "look lower/higher" (search there, less strictly)
  box        := ("bigger"|"larger"|"grow"|"smaller"|"shrink") [AMOUNT] | "tighter"
              | "move" DIRECTION ["by"] [N ("mm"|"px"|"pixels")]
              | ("extend"|"shrink") "the" EDGE "edge" [N "mm"] | "shrink from the" SIDE [N "mm"]
  extent     := ("extend"|"continue") ("up"|"down") [N ("mm"|"slices")] | "add the upper/lower pole"
              | "trim the top/bottom" [N ("mm"|"slices")]           (along the body axis, volumes only)
  scope      := "apply to all slices" (repeat the last edit on every slice) | "only here" (take that back)
  point      := ("include"|"add") REGION ["part"] | ("exclude"|"remove") REGION "part" | "add a point at the" REGION
  selection  := "the other one" | "the other side" | "the bigger"/"smaller one" | "the" ORDINAL "candidate"
  navigation := "next"/"previous slice" | "go to slice" N | ("up"|"down") N "slices" | PLANE | WINDOW "window"
  control    := "undo" | "redo" | "reset" | "accept" | "done" | "help"
  AMOUNT     := "a lot" (x1.5) | "a little"/"slightly" (x1.1) | N "%" ; default x1.25
  DIRECTION  := left | right (the PATIENT's side) | up | down (screen) | anterior | posterior | superior | inferior
  SIDE       := front | back | left | right (patient) | top | bottom (screen)
  REGION     := top/upper | bottom/lower | left | right | centre/middle | corners ("upper left" ...)
"Left"/"right" always mean the patient's left/right. Undo and redo cover segmentation edits, not
slice, plane or window changes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from limis.errors import LimisError, VocabularyError

DEFAULT_SCALE = 1.25
DEFAULT_MOVE_MM = 5.0
DEFAULT_EDGE_MM = 5.0
UNDERSTOOD = (
    "structures ('left kidney', 'also the aorta', 'only the liver', 'remove the spleen'), finding a missed one "
    "('it is here', 'look lower'), box edits ('bigger', 'smaller a little', 'move left 5 mm', 'extend the top edge', "
    "'shrink from the front', 'tighter'), along the body ('extend up 10 mm', 'add the lower pole', 'trim the top'), "
    "scope ('apply to all slices', 'only here'), points ('include the upper part', 'exclude the lower left part'), "
    "choices ('the other one', 'the other side', 'the bigger one'), navigation ('next slice', 'go to slice 40', "
    "'up 5 slices', 'coronal', 'lung window') and 'undo', 'redo', 'reset', 'accept', 'done'"
)


@dataclass(frozen=True)
class Query:
    structures: tuple[str, ...]
    mode: str  # "add" (kept with what is segmented) | "replace" ("only ...") | "remove"


@dataclass(frozen=True)
class Locate:
    """The user says where a structure is: search there with the detector's own threshold."""

    where: str  # "here" (this slice and its neighbours) | "superior" | "inferior" (of this slice)
    structures: tuple[str, ...] = ()  # () = the structure last asked for


@dataclass(frozen=True)
class SliceExtent:
    """Grow (amount > 0) or trim (amount < 0) a structure's end along the body axis."""

    direction: str  # "superior" | "inferior"
    amount: float
    unit: str  # "mm" | "slices"


@dataclass(frozen=True)
class Scope:
    which: str  # "all" (repeat the last slice edit on every slice) | "here" (keep it on its slice only)


@dataclass(frozen=True)
class ScaleBox:
    factor: float


@dataclass(frozen=True)
class Tighten:
    pass


@dataclass(frozen=True)
class MoveBox:
    direction: str  # left/right/anterior/posterior/superior/inferior (patient) or up/down (screen)
    amount: float
    unit: str  # "mm" | "px"


@dataclass(frozen=True)
class MoveEdge:
    edge: str  # top | bottom | left | right  (left/right = patient's side)
    amount_mm: float  # > 0 extends outward, < 0 shrinks inward


@dataclass(frozen=True)
class AddPoint:
    region: tuple[str, ...]  # subset of {"top","bottom","left","right"}; () = centre
    positive: bool


@dataclass(frozen=True)
class Select:
    which: str  # "other" | "other_side" | "bigger" | "smaller" | "index"
    index: int = 0


@dataclass(frozen=True)
class Navigate:
    kind: str  # "relative" | "absolute"
    value: int


@dataclass(frozen=True)
class SetPlane:
    plane: str


@dataclass(frozen=True)
class SetWindow:
    name: str


@dataclass(frozen=True)
class Control:
    action: str  # undo | redo | reset | accept | done | help


Edit = (Query | Locate | SliceExtent | Scope | ScaleBox | Tighten | MoveBox | MoveEdge | AddPoint | Select | Navigate
        | SetPlane | SetWindow | Control)


class NotUnderstood(LimisError):
    """An utterance the grammar does not cover; the message lists what is understood."""


_FILLERS = re.compile(
    r"\b(please|can you|could you|would you|i want to|i'd like to|let's|lets|now|just|ok|okay|then|and then|thanks|thank you)\b"
)
_COMMAND_VERBS = {"move", "shift", "make", "extend", "shrink", "go", "put", "place", "exclude", "cut", "nudge", "push",
                  "zoom", "rotate", "flip", "turn"}
_ORDINALS = {"first": 0, "1st": 0, "second": 1, "2nd": 1, "third": 2, "3rd": 2, "fourth": 3, "4th": 3}
_WORD_NUMBERS = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
                 "ten": 10, "fifteen": 15, "twenty": 20}
_DIRECTIONS = {
    "left": "left", "right": "right", "up": "up", "upward": "up", "upwards": "up", "down": "down",
    "downward": "down", "downwards": "down", "anterior": "anterior", "anteriorly": "anterior", "forward": "anterior",
    "posterior": "posterior", "posteriorly": "posterior", "back": "posterior", "backward": "posterior",
    "superior": "superior", "superiorly": "superior", "cranial": "superior", "inferior": "inferior",
    "inferiorly": "inferior", "caudal": "inferior",
}
_REGION_WORDS = {"top": "top", "upper": "top", "superior": "top", "bottom": "bottom", "lower": "bottom",
                 "inferior": "bottom", "left": "left", "right": "right"}
_EDGE_WORDS = {"top": "top", "upper": "top", "bottom": "bottom", "lower": "bottom", "left": "left", "right": "right",
               "front": "anterior", "anterior": "anterior", "back": "posterior", "posterior": "posterior"}
_BODY_AXIS = {"up": "superior", "upward": "superior", "upwards": "superior", "superiorly": "superior",
              "higher": "superior", "upper": "superior", "top": "superior", "cranially": "superior",
              "down": "inferior", "downward": "inferior", "downwards": "inferior", "inferiorly": "inferior",
              "lower": "inferior", "bottom": "inferior", "caudally": "inferior"}
_PLANES = {"axial": "axial", "transverse": "axial", "coronal": "coronal", "sagittal": "sagittal"}
_WINDOWS = ("abdomen", "abdominal", "soft tissue", "lung", "bone", "brain")
_CONTROL = {
    "undo": "undo", "undo that": "undo", "go back": "undo", "redo": "redo", "reset": "reset", "start over": "reset",
    "clear": "reset", "accept": "accept", "accept it": "accept", "looks good": "accept", "good": "accept",
    "keep it": "accept", "done": "done", "finish": "done", "finished": "done", "that's it": "done", "save": "done",
    "help": "help", "help me": "help", "what can i say": "help", "what can i do": "help", "commands": "help",
    "what do you understand": "help",
}


def normalise(text: str) -> str:
    text = text.lower().strip()
    text = re.sub(r"[!?,;]+", " ", text)
    text = re.sub(r"(?<!\d)\.(?!\d)", " ", text)
    text = _FILLERS.sub(" ", text)
    for word, value in _WORD_NUMBERS.items():
        text = re.sub(rf"\b{word}\b", str(value), text)
    return " ".join(text.split())


def parse(utterance: str) -> Edit:
    """The edit an utterance asks for; raises NotUnderstood (one line) otherwise."""
    from limis.vocab.parser import MAX_PROMPT_CHARS

    if len(utterance) > MAX_PROMPT_CHARS:  # refused without echoing it
        raise NotUnderstood(f"that command is {len(utterance)} characters long; LIMIS takes at most "
                            f"{MAX_PROMPT_CHARS}: name a structure or a refinement, e.g. 'left kidney' or 'bigger'.")
    text = normalise(utterance)
    if not text:
        raise NotUnderstood(f"I heard nothing to do. I understand {UNDERSTOOD}.")
    for rule in (_control, _navigation, _scope, _locate, _extent, _selection, _box, _point):
        edit = rule(text)
        if edit is not None:
            return edit
    if text.split()[0] in _COMMAND_VERBS:
        raise NotUnderstood(f"Sorry, I did not understand '{utterance.strip()}'. I understand {UNDERSTOOD}.")
    try:
        edit = _query(text)
    except VocabularyError as unknown:
        raise NotUnderstood(f"Sorry, I did not understand '{utterance.strip()}': {unknown}") from None
    if edit is not None:
        return edit
    raise NotUnderstood(f"Sorry, I did not understand '{utterance.strip()}'. I understand {UNDERSTOOD}.")


def _control(text: str) -> Edit | None:
    return Control(_CONTROL[text]) if text in _CONTROL else None


def _navigation(text: str) -> Edit | None:
    if m := re.fullmatch(r"(?:go )?(next|previous|prev|last) slice", text):
        return Navigate("relative", 1 if m.group(1) == "next" else -1)
    if m := re.fullmatch(r"(?:go to|goto|jump to|show) slice (\d+)", text):
        return Navigate("absolute", int(m.group(1)))
    if m := re.fullmatch(r"(?:go |move )?(up|down) (\d+) slices?", text):
        return Navigate("relative", int(m.group(2)) * (1 if m.group(1) == "up" else -1))
    if m := re.fullmatch(r"(?:show |switch to |go to |use )?(?:the )?(axial|transverse|coronal|sagittal)(?: view| plane)?", text):
        return SetPlane(_PLANES[m.group(1)])
    if m := re.fullmatch(r"(?:use |switch to |show )?(?:the |a )?(abdomen|abdominal|soft tissue|lung|bone|brain) window", text):
        name = {"abdominal": "abdomen", "soft tissue": "abdomen"}.get(m.group(1), m.group(1))
        return SetWindow(name)
    return None


def _scope(text: str) -> Edit | None:
    if re.fullmatch(r"(?:apply|do|copy|propagate|repeat)(?: (?:it|that|this))?(?: (?:to|on|for|in))?(?: (?:all|every|each)"
                    r"(?: the| other)? slices?| everywhere| through the volume| the whole volume)|(?:on )?all slices|"
                    r"everywhere|propagate(?: (?:it|that))?", text):
        return Scope("all")
    if re.fullmatch(r"only (?:here|on this slice|this slice)|(?:here|this slice) only|only on this slice|not everywhere", text):
        return Scope("here")
    return None


def _locate(text: str) -> Edit | None:
    if m := re.fullmatch(r"(?:(?:it|that)(?: i|')?s (?:there|here|lower|higher|further (?:down|up)|below|above) )?"
                         r"(?:look|search|try|check)(?: (?:a bit|further|more))? (lower|higher|down|up|below|above)(?: down| up)?", text):
        return Locate("inferior" if m.group(1) in ("lower", "down", "below") else "superior")
    if m := re.fullmatch(r"(?:(?:it|that)(?: i|')?s|look) (lower|higher|further down|further up|below|above)", text):
        return Locate("inferior" if m.group(1) in ("lower", "further down", "below") else "superior")
    if re.fullmatch(r"(?:(?:it|that)(?: i|')?s (?:here|there|on this slice)|look here|here it is|here|it is right here)", text):
        return Locate("here")
    if m := re.fullmatch(r"(?:the )?(.+?) (?:is|are) (?:here|there|on this slice)", text):
        query = _query(m.group(1))
        return Locate("here", query.structures) if query is not None else None
    return None


def _extent(text: str) -> Edit | None:
    if m := re.fullmatch(r"(?:extend|continue|grow)(?: it)? (up|upward|upwards|down|downward|downwards|superiorly|"
                         r"inferiorly|higher|lower|cranially|caudally)(?: by)?(?: (\d+(?:\.\d+)?) ?(mm|cm|slices?))?", text):
        amount, unit = _extent_amount(m.group(2), m.group(3))
        return SliceExtent(_BODY_AXIS[m.group(1)], amount, unit)
    if m := re.fullmatch(r"(?:add|include|extend to|get|take) (?:the )?(upper|lower|top|bottom) (?:pole|end|tip)", text):
        return SliceExtent(_BODY_AXIS[m.group(1)], 10.0, "mm")
    if m := re.fullmatch(r"(?:trim|cut|remove|drop|shorten)(?: it)?(?: from| at| off)? the (top|bottom|upper end|lower end)"
                         r"(?: by)?(?: (\d+(?:\.\d+)?) ?(mm|cm|slices?))?", text):
        amount, unit = _extent_amount(m.group(2), m.group(3))
        return SliceExtent(_BODY_AXIS[m.group(1).split()[0]], -amount, unit)
    return None


def _extent_amount(number: str | None, unit: str | None) -> tuple[float, str]:
    if number is None:
        return 10.0, "mm"
    if unit and unit.startswith("slice"):
        return float(number), "slices"
    return float(number) * (10.0 if unit == "cm" else 1.0), "mm"


def _selection(text: str) -> Edit | None:
    text = re.sub(r"^(?:no |not that |choose |select |pick |take |use )+", "", text)
    if re.fullmatch(r"(?:the )?other side", text):
        return Select("other_side")
    if re.fullmatch(r"(?:the )?(?:other|next) (?:one|candidate)", text):
        return Select("other")
    if m := re.fullmatch(r"(?:the )?(bigger|larger|smaller) (?:one|candidate)", text):
        return Select("bigger" if m.group(1) in ("bigger", "larger") else "smaller")
    if m := re.fullmatch(r"(?:the )?(first|1st|second|2nd|third|3rd|fourth|4th) (?:one|candidate|option)", text):
        return Select("index", _ORDINALS[m.group(1)])
    if m := re.fullmatch(r"candidate (\d+)", text):
        return Select("index", int(m.group(1)) - 1)
    return None


def _amount(rest: str) -> float | None:
    """Scale factor from 'a lot', 'a little', '20%' / '20 percent'; None if nothing recognisable."""
    rest = rest.strip()
    if not rest:
        return DEFAULT_SCALE
    if re.fullmatch(r"(?:by )?(?:a lot|much|way|a lot more|significantly)", rest):
        return 1.5
    if re.fullmatch(r"(?:by )?(?:a little|slightly|a bit|a touch|a little bit)", rest):
        return 1.1
    if m := re.fullmatch(r"(?:by )?(\d+(?:\.\d+)?) ?(?:%|percent)", rest):
        return 1.0 + float(m.group(1)) / 100.0
    return None


def _box(text: str) -> Edit | None:
    text = re.sub(r"^(?:make )?(?:the )?(?:box |mask |it )?", "", text)
    if m := re.fullmatch(r"(a lot|much|way|a little|slightly|a bit|a touch) (bigger|larger|wider|smaller|narrower)", text):
        text = f"{m.group(2)} {m.group(1)}"  # "a lot bigger" -> "bigger a lot"
    if m := re.fullmatch(r"(extend|expand|grow|move out|shrink|pull in|reduce|move in)(?: the)? (top|upper|bottom|lower|left|right|front|back|anterior|posterior) (?:edge|side|border)(?: by)?(?: (\d+(?:\.\d+)?) ?(mm|cm))?", text):
        amount, _ = _distance(m.group(3), m.group(4), DEFAULT_EDGE_MM)
        sign = 1.0 if m.group(1) in ("extend", "expand", "grow", "move out") else -1.0
        return MoveEdge(_EDGE_WORDS[m.group(2)], sign * amount)
    if m := re.fullmatch(r"(shrink|pull in|cut|grow|extend)(?: it)? (?:from|at) the (front|back|anterior|posterior|left|right)(?: by)?(?: (\d+(?:\.\d+)?) ?(mm|cm))?", text):
        amount, _ = _distance(m.group(3), m.group(4), DEFAULT_EDGE_MM)
        return MoveEdge(_EDGE_WORDS[m.group(2)], (1.0 if m.group(1) in ("grow", "extend") else -1.0) * amount)
    if re.fullmatch(r"(?:make it |box )?(?:tighter|tighten(?: it| the box)?|fit (?:it|the box)(?: tighter)?)", text):
        return Tighten()
    if m := re.fullmatch(r"(?:it )?(bigger|larger|grow|enlarge|expand|wider)(?: it)?(.*)", text):
        factor = _amount(m.group(2))
        return ScaleBox(factor) if factor else None
    if m := re.fullmatch(r"(?:it )?(smaller|shrink|reduce|narrower)(?: it)?(.*)", text):
        factor = _amount(m.group(2))
        if factor is None:
            return None
        percent = re.search(r"(\d+(?:\.\d+)?) ?(?:%|percent)", m.group(2))
        return ScaleBox(max(0.05, 1.0 - float(percent.group(1)) / 100.0) if percent else 1.0 / factor)
    if m := re.fullmatch(r"(?:move|shift|push|nudge)(?: it| the box)? (?:to the |towards the |toward the |to )?(?:patient'?s )?(\w+)(?: by)?(?: (\d+(?:\.\d+)?) ?(mm|millimet(?:er|re)s?|px|pixels?|cm))?", text):
        if m.group(1) not in _DIRECTIONS:
            return None
        amount, unit = _distance(m.group(2), m.group(3), DEFAULT_MOVE_MM)
        return MoveBox(_DIRECTIONS[m.group(1)], amount, unit)
    return None


def _distance(number: str | None, unit: str | None, default_mm: float) -> tuple[float, str]:
    if number is None:
        return default_mm, "mm"
    value = float(number)
    if unit and unit.startswith("cm"):
        return value * 10.0, "mm"
    if unit and unit.startswith(("px", "pixel")):
        return value, "px"
    return value, "mm"


def _region(words: str) -> tuple[str, ...] | None:
    if words in ("middle", "centre", "center", "central", "the middle", "the centre", "the center"):
        return ()
    parts = [w for w in words.replace("-", " ").split() if w not in ("the", "part", "portion", "region", "bit", "area", "corner", "side")]
    if not parts or any(p not in _REGION_WORDS for p in parts):
        return None
    region = tuple(sorted({_REGION_WORDS[p] for p in parts}))
    if {"top", "bottom"} <= set(region) or {"left", "right"} <= set(region):
        return None
    return region


def _point(text: str) -> Edit | None:
    if m := re.fullmatch(r"(?:add|put|place) (?:a )?(?:positive |negative )?point (?:at|in|on) (?:the )?(.+)", text):
        region = _region(m.group(1))
        return AddPoint(region, "negative" not in text) if region is not None else None
    if m := re.fullmatch(r"(include|add|keep|grow into|also include|extend to|extend into) (?:the )?(.+?) (?:part|portion|region|bit|area|corner|pole|side)", text):
        region = _region(m.group(2))
        return AddPoint(region, True) if region is not None else None
    if m := re.fullmatch(r"(exclude|remove|cut|drop|cut off|leave out|not) (?:the )?(.+?) (?:part|portion|region|bit|area|corner|pole|side)", text):
        region = _region(m.group(2))
        return AddPoint(region, False) if region is not None else None
    return None


def _query(text: str) -> Edit | None:
    from limis.text import resolve_phrase

    mode = "add"
    if m := re.match(r"^(?:also|add|and|plus|include)(?: the)? (.+)", text):
        text = m.group(1)
    elif m := re.match(r"^only(?: the)? (.+)", text):
        mode, text = "replace", m.group(1)
    elif m := re.match(r"^(?:remove|delete|drop|forget|clear)(?: the)? (.+)", text):
        mode, text = "remove", m.group(1)
    structures: list[str] = []
    for resolution in resolve_phrase(text, use_embeddings=False):
        structures.extend(s for s in resolution.structures if s not in structures)
    return Query(tuple(structures), mode) if structures else None
