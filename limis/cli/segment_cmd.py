"""`limis segment IMAGE PROMPT... -o OUT.nii.gz`: phrases -> boxes -> masks -> labelmap in the input geometry."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from limis.cli.app import app, console, invocation, print_reader_warnings, print_written
from limis.cli.memory import return_freed_memory
from limis.cli.options import (
    DEFAULTS,
    CacheDirOption,
    DetectorOption,
    DetectorWeightsOption,
    DeviceOption,
    ModalityOption,
    ModelOptions,
    RuntimeOption,
    SegmenterOption,
    WeightsOption,
)
from limis.imaging.readers import modality_line

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
    ctx: typer.Context,
    image: Path = typer.Argument(..., help="NIfTI, DICOM folder/.zip, or PNG/JPEG."),
    prompts: list[str] = typer.Argument(..., help="What to segment, e.g. 'left kidney' 'liver and spleen'."),
    out: Path = typer.Option(..., "-o", "--out", help="Output labelmap (.nii.gz); a .json label table is written beside it."),
    detector: DetectorOption = DEFAULTS.detector,
    detector_weights: DetectorWeightsOption = DEFAULTS.detector_weights,
    segmenter: SegmenterOption = DEFAULTS.segmenter,
    weights: WeightsOption = DEFAULTS.weights,
    runtime: RuntimeOption = DEFAULTS.runtime,
    labels: Path = typer.Option(None, "--labels", help="Reference labelmap for the oracle detector."),
    label_map: Path = typer.Option(None, "--label-map", help="JSON id -> name table of --labels."),
    device: DeviceOption = DEFAULTS.device,
    plane: str = typer.Option("axial", "--plane", help="Plane to segment slice by slice."),
    window: str = typer.Option(None, "--window", help="CT window preset: abdomen, lung, bone, brain."),
    all_components: bool = typer.Option(False, "--all-components", help="Keep every connected piece, not only the largest."),
    view: str = typer.Option("radiological", "--view", help="Screen convention of a 2D PNG/JPEG input."),
    modality: ModalityOption = None,
    cache_dir: CacheDirOption = DEFAULTS.cache_dir,
    as_json: bool = typer.Option(False, "--json", help="Print the result table as JSON."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace output files that already exist (never an input)."),
) -> None:
    """Segment structures named in plain language; 'left'/'right' mean the patient's side."""
    from limis.eval.provenance import report, report_bytes
    from limis.imaging import Plane, load_image
    from limis.imaging.export import dicom_seg_files, dicom_seg_path, labelmap_files, report_path
    from limis.imaging.outputs import commit_files
    from limis.pipeline.grounded import GroundedPipeline, SegmentOptions
    from limis.segment.runtime import EXPORT_RUNTIMES

    planned_outputs(image, out, [labels, label_map], overwrite=overwrite)
    structures = resolve_prompts(prompts)
    models = ModelOptions(segmenter, weights, runtime, detector, detector_weights, device, cache_dir)
    if invocation(ctx).own_process and models.encoder_runtime() in EXPORT_RUNTIMES:
        return_freed_memory()  # a batch job on ONNX engines: its peak memory counts (limis.cli.memory)
    timings, began = {}, time.perf_counter()
    volume = load_image(image, view=view, modality=modality)
    print_reader_warnings(volume)
    if not as_json:
        console.print(modality_line(volume), highlight=False)
    timings["read_s"], began = time.perf_counter() - began, time.perf_counter()
    cache = models.build_cache()
    found_detector = models.build_detector(volume, cache, labels, label_map)
    pipeline = GroundedPipeline(found_detector, cache)
    options = SegmentOptions(plane=Plane(plane), window=window, largest_component=not all_components)
    timings["load_models_s"], began = time.perf_counter() - began, time.perf_counter()
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} slices"),
                  TimeElapsedColumn(), console=console, transient=True, disable=as_json) as bar:
        task = bar.add_task("segmenting", total=None)

        def progress(done: int, total: int, doing: str) -> None:
            bar.update(task, completed=done, total=total, description=doing)

        result = pipeline.segment(volume, structures, options, progress=progress)
    timings["segment_s"] = time.perf_counter() - began
    cache.release()  # before writing: the DICOM-SEG encoder loads the standard's tables (~90 MiB) on top of them
    present = {r.label_id: r.structure for r in result.results if r.found}
    size_key, size_of = size_measure(volume)
    rows = [{"structure": r.structure, "found": r.found, "voxels": r.voxels, size_key: size_of(r),
             "detector_score": round(r.score, 3), "slices": list(r.slice_range) if r.slice_range else None,
             "not_looked_for": r.refusal, "caveat": r.caveat, "also_seen_on_slices": [list(span) for span in r.elsewhere]}
            for r in result.results]
    written = []
    if present:
        files = labelmap_files(volume, result.labelmap, present, out)
        if volume.source_kind == "dicom":
            files.update(dicom_seg_files(volume, result.labelmap, present, dicom_seg_path(out)))
        record = report(volume, {"segmenter": cache.segmenter, "detector": found_detector}, command="segment",
                        options={**asdict(models), "cache_dir": bool(cache_dir), "plane": plane, "window": window,
                                 "all_components": all_components, "view": view, "modality": modality,
                                 "prompts_resolved": structures},
                        timings_s={k: round(v, 3) for k, v in timings.items()},
                        results=rows, outputs=[path.name for path in [*files, report_path(out)]])
        files[report_path(out)] = report_bytes(record)
        written = commit_files(files)
    _report(rows, written, as_json, size_key)


def planned_outputs(image: Path, out: Path, inputs: list[Path | None], *, overwrite: bool) -> list[Path]:
    """Every file `segment` may write (labelmap, JSON table, DICOM-SEG for DICOM input), checked before any compute."""
    from limis.imaging.export import dicom_seg_path, report_path, sidecar_path
    from limis.imaging.outputs import check_labelmap_name, check_outputs
    from limis.imaging.readers import is_dicom_input

    check_labelmap_name(out)
    planned = [out, sidecar_path(out), report_path(out)] + ([dicom_seg_path(out)] if is_dicom_input(image) else [])
    check_outputs(planned, [image, *inputs], overwrite=overwrite)
    return planned


def size_measure(volume) -> tuple[str, Callable]:
    """The size column for this image: ml for volumes, mm² for a 2D slice of known spacing, pixels otherwise."""
    if volume.source_kind != "image2d":
        return "volume_ml", lambda r: round(r.volume_ml, 2)
    if volume.metadata.get("spacing_assumed"):
        return "area_pixels", lambda r: int(r.voxels)
    pixel_mm2 = volume.spacing[0] * volume.spacing[1]
    return "area_mm2", lambda r: round(r.voxels * pixel_mm2, 1)


SIZE_HEADINGS = {"volume_ml": "volume (ml)", "area_pixels": "area (pixels)", "area_mm2": "area (mm²)"}


def _report(rows: list[dict], written: list[Path], as_json: bool, size_key: str) -> None:
    from limis.pipeline.grounded import elsewhere_text

    if as_json:
        console.print_json(json.dumps({"structures": rows, "written": [str(p) for p in written]}))
        return
    table = Table(title="LIMIS segmentation (left/right = patient's side)")
    for column in ("structure", "voxels", SIZE_HEADINGS[size_key], "detector score", "slices"):
        table.add_column(column, justify="right" if column != "structure" else "left")
    for row in rows:
        if row["found"]:
            size = row[size_key]
            table.add_row(row["structure"], str(row["voxels"]), str(size) if isinstance(size, int) else f"{size:.1f}",
                          f"{row['detector_score']:.2f}", "{}-{}".format(*row["slices"]))
        else:
            why = row["not_looked_for"] or "not found in this image"
            table.add_row(row["structure"], "-", "-", "-", f"[yellow]{why}[/]")
    console.print(table)
    for row in rows:
        for note in (row["caveat"], elsewhere_text(row["also_seen_on_slices"])):
            if note:
                console.print(f"[yellow]{row['structure']}: {note}.[/]")
    for path in written:
        print_written(path)
    if not written:
        console.print("[yellow]nothing found: no mask written.[/]")
