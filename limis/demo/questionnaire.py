"""Questionnaire texts the demo shows: the 10 SUS items and the 6 NASA-TLX raw subscales (data only).

SUS: Brooke (1996), "SUS: a quick and dirty usability scale"; 1 = strongly disagree ...
5 = strongly agree. NASA-TLX: Hart & Staveland (1988); raw TLX (no pairwise weighting),
each subscale 0-100 in steps of 5.
"""

from __future__ import annotations

SUS_SCALE = (1, 2, 3, 4, 5)
SUS_ANCHORS = ("strongly disagree", "strongly agree")

SUS_ITEMS: tuple[tuple[str, str], ...] = (
    ("sus_1", "I think that I would like to use this system frequently."),
    ("sus_2", "I found the system unnecessarily complex."),
    ("sus_3", "I thought the system was easy to use."),
    ("sus_4", "I think that I would need the support of a technical person to be able to use this system."),
    ("sus_5", "I found the various functions in this system were well integrated."),
    ("sus_6", "I thought there was too much inconsistency in this system."),
    ("sus_7", "I would imagine that most people would learn to use this system very quickly."),
    ("sus_8", "I found the system very cumbersome to use."),
    ("sus_9", "I felt very confident using the system."),
    ("sus_10", "I needed to learn a lot of things before I could get going with this system."),
)

TLX_STEP = 5
# id, title, question, definition, (low anchor, high anchor)
TLX_SUBSCALES: tuple[tuple[str, str, str, str, tuple[str, str]], ...] = (
    ("tlx_mental", "Mental demand", "How mentally demanding was the task?",
     "How much mental and perceptual activity was required (thinking, deciding, calculating, remembering, "
     "looking, searching)? Was the task easy or demanding, simple or complex?", ("very low", "very high")),
    ("tlx_physical", "Physical demand", "How physically demanding was the task?",
     "How much physical activity was required (pushing, pulling, turning, controlling, activating)? "
     "Was the task easy or demanding, slack or strenuous, restful or laborious?", ("very low", "very high")),
    ("tlx_temporal", "Temporal demand", "How hurried or rushed was the pace of the task?",
     "How much time pressure did you feel due to the rate or pace at which the task elements occurred? "
     "Was the pace slow and leisurely or rapid and frantic?", ("very low", "very high")),
    ("tlx_performance", "Performance", "How successful were you in accomplishing what you were asked to do?",
     "How successful do you think you were in accomplishing the goals of the task? How satisfied were you "
     "with your performance? (Low = perfect, high = failure.)", ("perfect", "failure")),
    ("tlx_effort", "Effort", "How hard did you have to work to accomplish your level of performance?",
     "How hard did you have to work (mentally and physically) to accomplish your level of performance?",
     ("very low", "very high")),
    ("tlx_frustration", "Frustration", "How insecure, discouraged, irritated, stressed, and annoyed were you?",
     "How insecure, discouraged, irritated, stressed and annoyed versus secure, gratified, content, relaxed "
     "and complacent did you feel during the task?", ("very low", "very high")),
)
