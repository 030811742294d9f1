"""Grounding DINO training captions: which labels a sample's caption names, and the caption text.

The text is the detector's own prompt (`limis.detect.grounding_dino.label_prompt` of each
structure's `structure_label`), so a trained model is asked at inference in the words it learned.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from limis.detect.grounding_dino import label_prompt, structure_label


def caption_labels(
    present: Sequence[str], vocabulary: Sequence[str], rng: np.random.Generator, distractors: int = 4
) -> list[str]:
    """Targets plus up to `distractors` absent labels from `vocabulary`, shuffled (canonical names)."""
    absent = sorted(set(vocabulary) - set(present))
    chosen = list(rng.choice(absent, size=min(distractors, len(absent)), replace=False)) if absent else []
    labels = list(dict.fromkeys(present)) + [str(name) for name in chosen]
    rng.shuffle(labels)
    return labels



def caption_text(labels: Sequence[str]) -> str:
    """Label-list caption of canonical names, as the detector prompts them: "left kidney . liver . spleen ."."""
    return label_prompt([structure_label(name) for name in labels])
