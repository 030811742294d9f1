"""`limis chat IMAGE`: a terminal REPL on one interactive session; masks are saved on "done"."""

from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path

import typer

from limis.cli.app import app, console, print_reader_warnings, print_written
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

EPILOG = ("Example: limis chat ct.nii.gz -o seg.nii.gz --detector oracle --labels ref.nii.gz --label-map map.json\n\n"
          "Then type: left kidney / bigger / move left 5 mm / next slice / undo / done")


@app.command("chat", epilog=EPILOG)
def chat(
    image: Path = typer.Argument(..., help="NIfTI, DICOM folder/.zip, or PNG/JPEG."),
    out: Path = typer.Option(Path("limis-output/chat.nii.gz"), "-o", "--out", help="Labelmap written on 'done'."),
    detector: DetectorOption = DEFAULTS.detector,
    detector_weights: DetectorWeightsOption = DEFAULTS.detector_weights,
    segmenter: SegmenterOption = DEFAULTS.segmenter,
    weights: WeightsOption = DEFAULTS.weights,
    runtime: RuntimeOption = DEFAULTS.runtime,
    labels: Path = typer.Option(None, "--labels", help="Reference labels: oracle boxes and Dice in replies."),
    label_map: Path = typer.Option(None, "--label-map"),
    slice_index: int = typer.Option(None, "--slice", help="Axial slice to start on (default: middle)."),
    log: Path = typer.Option(None, "--log", help="Append the interaction log (JSONL) here."),
    participant: str = typer.Option(None, "--participant", help="Study participant id written in the log."),
    device: DeviceOption = DEFAULTS.device,
    cache_dir: CacheDirOption = DEFAULTS.cache_dir,
    modality: ModalityOption = None,
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace output files that already exist (never an input)."),
) -> None:
    """Segment and refine by typing; 'left'/'right' are the patient's side."""
    from limis.eval.provenance import report, report_bytes
    from limis.imaging import load_image
    from limis.imaging.align import load_labelmap_on
    from limis.imaging.export import labelmap_files, report_path, sidecar_path
    from limis.imaging.outputs import check_labelmap_name, check_outputs, commit_files
    from limis.interact import InteractionLog, Session
    from limis.pipeline.registry import read_label_names

    check_labelmap_name(out)
    check_outputs([out, sidecar_path(out), report_path(out)], [image, labels, label_map, log], overwrite=overwrite)
    volume = load_image(image, modality=modality)
    print_reader_warnings(volume)
    console.print(modality_line(volume), highlight=False)
    reference = (load_labelmap_on(volume, labels), read_label_names(label_map)) if labels and label_map else None
    models = ModelOptions(segmenter, weights, runtime, detector, detector_weights, device, cache_dir)
    cache = models.build_cache()
    found_detector = models.build_detector(volume, cache, labels, label_map)
    interactive = sys.stdin.isatty()
    session = Session(volume, cache,
                      detector=found_detector, reference=reference,
                      log=InteractionLog(log, participant=participant) if log else None, index=slice_index,
                      progress=_progress_line if interactive else None)
    scope = "through the volume" if session.volumetric else "on this image"
    console.print(f"[bold]LIMIS chat[/] on {image.name}: {session.view.plane} slice {session.view.index}. A structure "
                  f"you name is segmented {scope}; 'help' lists what you can say. Left/right mean the patient's side. "
                  "Type 'done' to save, Ctrl-D to quit.")
    while not session.state.done:
        if interactive:
            console.print("[cyan]>[/] ", end="")
        line = sys.stdin.readline()
        if not line:
            break
        if not line.strip():
            continue
        reply = session.apply(line.strip())
        if interactive:
            console.print(" " * 60, end="\r")  # clear the progress line
        console.print(("[green]" if reply.changed else "[yellow]") + reply.text + "[/]", highlight=False)
    labelmap, names = session.labelmap()
    if session.state.done and names:
        files = labelmap_files(volume, labelmap, names, out)
        record = report(volume, {"segmenter": cache.segmenter, "detector": found_detector}, command="chat",
                        options={**asdict(models), "cache_dir": bool(cache_dir), "modality": modality},
                        structures=sorted(names.values()), outputs=[p.name for p in [*files, report_path(out)]])
        files[report_path(out)] = report_bytes(record)
        for path in commit_files(files):
            print_written(path)
    elif session.state.done:
        console.print("[yellow]nothing segmented: no mask written.[/]")
    else:
        console.print("[yellow]ended without 'done': nothing written.[/]")


def _progress_line(done: int, total: int, doing: str) -> None:
    """One overwritten line while a 3D query encodes and decodes its slices."""
    console.print(f"  {doing}: slice {done} of {total}", end="\r", highlight=False)
