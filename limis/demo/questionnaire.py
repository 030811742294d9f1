"""Questionnaire texts the demo shows, read from the instruments shipped with the analysis (one source).

`limis/eval/questionnaires/{sus,nasa_tlx}.json` (also linked from `evaluation/questionnaires/`)
hold the 10 SUS items (Brooke 1996; 1 = strongly disagree ... 5 = strongly agree) and the 6 raw
NASA-TLX subscales (Hart & Staveland 1988; 0-100 in steps of 5) with their definitions and anchors.
"""

from __future__ import annotations

from limis.eval.usability import instrument

_SUS = instrument("sus")
_TLX = instrument("nasa_tlx")

SUS_SCALE = tuple(range(int(_SUS["scale"]["min"]), int(_SUS["scale"]["max"]) + 1))
SUS_ANCHORS = (_SUS["scale"]["labels"][str(SUS_SCALE[0])].lower(), _SUS["scale"]["labels"][str(SUS_SCALE[-1])].lower())
SUS_ITEMS: tuple[tuple[str, str], ...] = tuple((item["id"], item["text"]) for item in _SUS["items"])

TLX_STEP = int(_TLX["scale"]["step"])
# id, title, question, definition, (low anchor, high anchor)
TLX_SUBSCALES: tuple[tuple[str, str, str, str, tuple[str, str]], ...] = tuple(
    (s["id"], s["name"], s["question"], s["definition"], (s["anchors"]["0"].lower(), s["anchors"]["100"].lower()))
    for s in _TLX["subscales"]
)
