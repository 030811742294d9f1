"""`limis segment IMAGE PROMPT... -o OUT.nii.gz`: phrases -> boxes -> masks -> labelmap in the input geometry."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from limis.cli.app import app, console, modality_line

EPILOG = (
    "Examples:\n\n"
    "  limis segment ct.nii.gz 'left kidney' spleen -o seg.nii.gz --detector oracle --labels ref.nii.gz --label-map map.json\n\n"
    "  limis segment dicom_dir/ liver spleen -o out.nii.gz   (shipped lite-grounding detector, no downloads)\n\n"
    "  limis segment dicom_dir/ liver -o liver.nii.gz --detector grounding-dino --detector-weights ./gdino-medical"
)


def resolve_prompts(prompts: list[str], use_embeddings: bool = True) -> list[str]:
    """Canonical structures for all prompts, in order, without repeats; unknown phrases fail before any model loads."""
    from limis.text import resolve_phrase

    structures: list[str] = []
    for prompt in prompts:
        for resolution in resolve_phrase(prompt, use_embeddings=use_embeddings):
            structures.extend(s for s in resolution.structures if s not in structures)
    return structures


@app.command("segment", epilog=EPILOG)
def segment(
    image: Path = typer.Argument(..., help="NIfTI, DICOM folder/.zip, or PNG/JPEG."),
    prompts: list[str] = typer.Argument(..., help="What to segment, e.g. 'left kidney' 'liver and spleen'."),
    out: Path = typer.Option(..., "-o", "--out", help="Output labelmap (.nii.gz); a .json label table is written beside it."),
    detector: str = typer.Option("auto", "--detector",
                                 help="auto (Grounding DINO if its weights are local, else lite-grounding) | lite-grounding | grounding-dino | oracle."),
    detector_weights: str = typer.Option(None, "--detector-weights",
                                         help="Grounding DINO folder or hub id, or a lite-grounding .safetensors head."),
    segmenter: str = typer.Option("litemedsam", "--segmenter", help="litemedsam | medsam_vit_b | sam_vit_b/l/h | hf-sam."),
    weights: str = typer.Option(None, "--weights", help="Segmenter checkpoint file or folder (default: shipped LiteMedSAM)."),
    labels: Path = typer.Option(None, "--labels", help="Reference labelmap for the oracle detector."),
    label_map: Path = typer.Option(None, "--label-map", help="JSON id -> name table of --labels."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:1, ..."),
    plane: str = typer.Option("axial", "--plane", help="Plane to segment slice by slice."),
    window: str = typer.Option(None, "--window", help="CT window preset: abdomen, lung, bone, brain."),
    all_components: bool = typer.Option(False, "--all-components", help="Keep every connected piece, not only the largest."),
    view: str = typer.Option("radiological", "--view", help="Screen convention of a 2D PNG/JPEG input."),
    modality: str = typer.Option(None, "--modality", help="CT | MR | XR | OT: overrides the guess from intensities "
                                 "(a CT clipped to [-125, 275] HU has no air and is guessed MR)."),
    cache_dir: Path = typer.Option(None, "--cache-dir", envvar="LIMIS_EMBEDDING_CACHE",
                                   help="Keep slice embeddings here so later runs on the same image skip encoding."),
    as_json: bool = typer.Option(False, "--json", help="Print the result table as JSON."),
) -> None:
    """Segment structures named in plain language; 'left'/'right' mean the patient's side."""
    from limis.detect.registry import build_detector
    from limis.imaging import Plane, load_image
    from limis.imaging.export import write_dicom_seg, write_labelmap
    from limis.pipeline.grounded import GroundedPipeline, SegmentOptions
    from limis.segment.builders import build_segmenter
    from limis.segment.cache import EmbeddingCache

    structures = resolve_prompts(prompts)
    volume = load_image(image, view=view, modality=modality)
    if not as_json:
        console.print(modality_line(volume), highlight=False)
    model = build_segmenter(segmenter, weights, device)
    cache = EmbeddingCache(model, disk_dir=cache_dir)
    found_detector = build_detector(detector, volume=volume, weights=detector_weights, labels=labels,
                                    label_map=label_map, device=device, embeddings=cache)
    pipeline = GroundedPipeline(found_detector, cache)
    options = SegmentOptions(plane=Plane(plane), window=window, largest_component=not all_components)
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} slices"),
                  TimeElapsedColumn(), console=console, transient=True, disable=as_json) as bar:
        task = bar.add_task("segmenting", total=None)

        def report(done: int, total: int, structure: str) -> None:
            bar.update(task, completed=done, total=total, description=f"segmenting {structure}")

        result = pipeline.segment(volume, structures, options, progress=report)
    present = {r.label_id: r.structure for r in result.results if r.found}
    rows = [{"structure": r.structure, "found": r.found, "voxels": r.voxels, "volume_ml": round(r.volume_ml, 2),
             "detector_score": round(r.score, 3), "slices": list(r.slice_range) if r.slice_range else None}
            for r in result.results]
    written = []
    if present:
        written.append(write_labelmap(volume, result.labelmap, present, out))
        if volume.source_kind == "dicom":
            written.append(write_dicom_seg(volume, result.labelmap, present, _dicom_seg_path(out)))
    _report(rows, written, as_json)


def _dicom_seg_path(out: Path) -> Path:
    name = out.name.removesuffix(".gz").removesuffix(".nii")
    return out.with_name(name + ".seg.dcm")


def _report(rows: list[dict], written: list[Path], as_json: bool) -> None:
    if as_json:
        console.print_json(json.dumps({"structures": rows, "written": [str(p) for p in written]}))
        return
    table = Table(title="LIMIS segmentation (left/right = patient's side)")
    for column in ("structure", "voxels", "volume (ml)", "detector score", "slices"):
        table.add_column(column, justify="right" if column != "structure" else "left")
    for row in rows:
        if row["found"]:
            table.add_row(row["structure"], str(row["voxels"]), f"{row['volume_ml']:.1f}",
                          f"{row['detector_score']:.2f}", "{}-{}".format(*row["slices"]))
        else:
            table.add_row(row["structure"], "-", "-", "-", "[yellow]not found in this image[/]")
    console.print(table)
    for path in written:
        console.print(f"wrote {path}")
    if not written:
        console.print("[yellow]nothing found: no mask written.[/]")
