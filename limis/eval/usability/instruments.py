"""The two questionnaires: SUS (Brooke 1996) and raw NASA-TLX (Hart 2006), loaded from the package JSON, and their scores."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from functools import lru_cache
from importlib import resources
from numbers import Integral, Real
from typing import Any

from limis.errors import LimisError


@lru_cache(maxsize=None)
def instrument(name: str) -> dict:
    """A shipped questionnaire ("sus", "nasa_tlx"): items, scale, anchors, scoring and sources, as its JSON."""
    return json.loads(resources.files("limis.eval").joinpath(f"questionnaires/{name}.json").read_text(encoding="utf-8"))


SUS_ITEMS = tuple(item["id"] for item in instrument("sus")["items"])
TLX_ITEMS = tuple(subscale["id"] for subscale in instrument("nasa_tlx")["subscales"])
TLX_SUBSCALES = tuple(item.removeprefix("tlx_") for item in TLX_ITEMS)
# Mean SUS over ~500 studies (Sauro 2011, "A Practical Guide to the System Usability Scale").
SUS_AVERAGE = 68.0
# Bangor, Kortum & Miller (2009), J. Usability Studies 4(3):114-123: mean SUS of the studies whose
# users chose each adjective; a score takes the highest adjective whose mean it reaches.
SUS_BANDS = ((85.5, "excellent"), (71.4, "good"), (50.9, "OK"), (-math.inf, "poor"))


def sus_score(answers: Sequence[int]) -> float:
    """System Usability Scale (Brooke 1996), 0-100 from ten answers in 1..5 (sus_1 first).

    Odd (positively worded) items score answer - 1, even (negatively worded) items 5 - answer;
    the sum (0-40) times 2.5 gives 0-100.
    """
    answers = list(answers)
    if len(answers) != len(SUS_ITEMS):
        raise LimisError(f"SUS needs 10 answers (sus_1..sus_10), got {len(answers)}.")
    for name, value in zip(SUS_ITEMS, answers):
        if isinstance(value, bool) or not isinstance(value, Integral) or not 1 <= value <= 5:
            raise LimisError(f"{name} = {value!r} is not an integer from 1 (strongly disagree) to 5 (strongly agree).")
    total = sum(a - 1 if i % 2 == 1 else 5 - a for i, a in enumerate(answers, start=1))
    return total * 2.5


def nasa_tlx_raw(ratings: Mapping[str, float]) -> float:
    """Raw (unweighted) NASA-TLX: the mean of the six subscale ratings, each 0-100 (Hart 2006).

    Keys are the subscale names ("mental", ..., "frustration"), with or without a "tlx_" prefix.
    """
    by_name: dict[str, tuple[str, Any]] = {}
    for key, value in ratings.items():
        name = key.removeprefix("tlx_")
        if name not in TLX_SUBSCALES:
            raise LimisError(f"'{key}' is not a NASA-TLX subscale (expected {', '.join(TLX_ITEMS)}).")
        by_name[name] = (key, value)
    missing = [f"tlx_{name}" for name in TLX_SUBSCALES if name not in by_name]
    if missing:
        raise LimisError(f"NASA-TLX rating {missing[0]} is missing (all six subscales are needed).")
    for key, value in by_name.values():
        if isinstance(value, bool) or not isinstance(value, Real) or not 0 <= value <= 100:
            raise LimisError(f"{key} = {value!r} is not a number from 0 to 100.")
    return sum(float(by_name[name][1]) for name in TLX_SUBSCALES) / len(TLX_SUBSCALES)


def sus_band(score: float) -> str:
    """Adjective band of a SUS score (Bangor, Kortum & Miller 2009): excellent/good/OK/poor."""
    return next(label for cut, label in SUS_BANDS if score >= cut)
