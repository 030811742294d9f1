"""Where text mode loses Dice: one row per case x structure with the error split by slices.

    python evaluation/grounding/error_split.py MANIFEST SPLIT HEAD OUT.csv [--option NAME=VALUE ...] [-s STRUCTURE ...]

Each structure is traced alone by the text pipeline (lite-grounding head HEAD, LiteMedSAM, largest 3D
component) and compared with its reference: `over` counts predicted voxels on slices the reference does
not reach (z over-extension), `missed` reference voxels on slices without a prediction, `fp_in`/`fn_in`
the errors on slices both have; `dice_in_slice` is the Dice the in-slice errors alone would leave.
`--option NAME=VALUE` changes one `SegmentOptions` field (e.g. `--option min_support=0` turns off the cut
to the head's own map), so two runs show what the option changes. Embeddings come from
LIMIS_EMBEDDING_CACHE when it is set.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import os
from pathlib import Path

import numpy as np

from limis.detect.lite_grounding import LiteGroundingDetector, LiteGroundingModel
from limis.eval.cases import load_case, present_structures
from limis.eval.datasets import load_manifest
from limis.imaging.overlap import dice
from limis.pipeline.grounded import GroundedPipeline, SegmentOptions
from limis.segment.builders import build_litemedsam
from limis.segment.cache import EmbeddingCache
from limis.vocab import label_ids


def error_split(prediction: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """Dice and the voxel errors of two canonical bool volumes, split by axial slice (canonical axis 2)."""
    predicted_z, reference_z = prediction.any(axis=(0, 1)), reference.any(axis=(0, 1))
    both = predicted_z & reference_z
    overlap = int((prediction & reference).sum())
    fp_in = int((prediction & ~reference)[:, :, both].sum())
    fn_in = int((reference & ~prediction)[:, :, both].sum())
    return {"dice": round(dice(prediction, reference), 4),
            "dice_in_slice": round(2 * overlap / max(1, 2 * overlap + fp_in + fn_in), 4),
            "reference_voxels": int(reference.sum()), "over": int(prediction[:, :, ~reference_z].sum()),
            "missed": int(reference[:, :, ~predicted_z].sum()), "fp_in": fp_in, "fn_in": fn_in,
            "reference_slices": int(reference_z.sum()), "predicted_slices": int(predicted_z.sum())}


def segment_option(text: str) -> tuple[str, object]:
    """"min_support=0.1" -> ("min_support", 0.1), typed like the `SegmentOptions` field it names."""
    name, _, value = text.partition("=")
    fields = {f.name: f for f in dataclasses.fields(SegmentOptions)}
    if name not in fields or not value:
        raise argparse.ArgumentTypeError(f"{text!r}: give NAME=VALUE with NAME one of {', '.join(fields)}")
    default = getattr(SegmentOptions(), name)
    kind = type(default) if default is not None else str
    return name, (value.lower() in ("1", "true", "yes") if kind is bool else kind(value))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("manifest")
    parser.add_argument("split")
    parser.add_argument("head")
    parser.add_argument("out", type=Path)
    parser.add_argument("--option", action="append", default=[], type=segment_option, dest="options",
                        help="NAME=VALUE: one SegmentOptions field, repeatable")
    parser.add_argument("-s", "--structure", action="append", dest="structures")
    args = parser.parse_args()
    manifest = load_manifest(args.manifest)
    model = LiteGroundingModel.load(args.head)
    segmenter = build_litemedsam()
    options = SegmentOptions(**dict(args.options))
    cache_dir = os.environ.get("LIMIS_EMBEDDING_CACHE")
    rows = []
    for case in manifest.split(args.split):
        volume, labels, names = load_case(case, manifest)
        cache = EmbeddingCache(segmenter, disk_dir=Path(cache_dir) if cache_dir else None)
        pipeline = GroundedPipeline(LiteGroundingDetector(model, cache), cache)
        for structure in present_structures(labels, names, args.structures):
            prediction = pipeline.segment(volume, [structure], options).labelmap == 1  # largest component, as in eval
            reference = np.isin(labels, label_ids(structure, names))
            rows.append({"case": case.case_id, "structure": structure, **error_split(prediction, reference)})
            print(rows[-1], flush=True)
    with args.out.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    for structure in dict.fromkeys(row["structure"] for row in rows):
        chosen = [row for row in rows if row["structure"] == structure]
        print(f"{structure}: mean Dice {np.mean([r['dice'] for r in chosen]):.3f} over {len(chosen)} cases")


if __name__ == "__main__":
    main()
