"""`limis chat IMAGE`: a terminal REPL on one interactive session; masks are saved on "done"."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from limis.cli.app import app, console, modality_line, print_reader_warnings

EPILOG = ("Example: limis chat ct.nii.gz -o seg.nii.gz --detector oracle --labels ref.nii.gz --label-map map.json\n\n"
          "Then type: left kidney / bigger / move left 5 mm / next slice / undo / done")


@app.command("chat", epilog=EPILOG)
def chat(
    image: Path = typer.Argument(..., help="NIfTI, DICOM folder/.zip, or PNG/JPEG."),
    out: Path = typer.Option(Path("limis-output/chat.nii.gz"), "-o", "--out", help="Labelmap written on 'done'."),
    detector: str = typer.Option("auto", "--detector", help="auto | lite-grounding | grounding-dino | oracle."),
    detector_weights: str = typer.Option(None, "--detector-weights"),
    segmenter: str = typer.Option("litemedsam", "--segmenter"),
    weights: str = typer.Option(None, "--weights"),
    labels: Path = typer.Option(None, "--labels", help="Reference labels: oracle boxes and Dice in replies."),
    label_map: Path = typer.Option(None, "--label-map"),
    slice_index: int = typer.Option(None, "--slice", help="Axial slice to start on (default: middle)."),
    log: Path = typer.Option(None, "--log", help="Append the interaction log (JSONL) here."),
    participant: str = typer.Option(None, "--participant", help="Study participant id written in the log."),
    device: str = typer.Option("cpu", "--device"),
    cache_dir: Path = typer.Option(None, "--cache-dir", envvar="LIMIS_EMBEDDING_CACHE"),
    modality: str = typer.Option(None, "--modality", help="CT | MR | XR | OT: overrides the guess from intensities "
                                 "(a CT clipped to [-125, 275] HU has no air and is guessed MR)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace output files that already exist (never an input)."),
) -> None:
    """Segment and refine by typing; 'left'/'right' are the patient's side."""
    from limis.detect.registry import build_detector, read_label_names
    from limis.imaging import load_image
    from limis.imaging.align import load_labelmap_on
    from limis.imaging.export import labelmap_files, sidecar_path
    from limis.imaging.outputs import check_labelmap_name, check_outputs, commit_files
    from limis.interact import InteractionLog, Session
    from limis.segment.builders import build_segmenter
    from limis.segment.cache import EmbeddingCache

    check_labelmap_name(out)
    check_outputs([out, sidecar_path(out)], [image, labels, label_map, log], overwrite=overwrite)
    volume = load_image(image, modality=modality)
    print_reader_warnings(volume)
    console.print(modality_line(volume), highlight=False)
    reference = (load_labelmap_on(volume, labels), read_label_names(label_map)) if labels and label_map else None
    model = build_segmenter(segmenter, weights, device)
    cache = EmbeddingCache(model, disk_dir=cache_dir)
    found_detector = build_detector(detector, volume=volume, weights=detector_weights, labels=labels,
                                    label_map=label_map, device=device, embeddings=cache)
    session = Session(volume, cache,
                      detector=found_detector, reference=reference,
                      log=InteractionLog(log, participant=participant) if log else None, index=slice_index)
    console.print(f"[bold]LIMIS chat[/] on {image.name}: {session.state.plane} slice {session.state.index}. "
                  "Left/right mean the patient's side. Type 'done' to save, Ctrl-D to quit.")
    interactive = sys.stdin.isatty()
    while not session.state.done:
        if interactive:
            console.print("[cyan]>[/] ", end="")
        line = sys.stdin.readline()
        if not line:
            break
        if not line.strip():
            continue
        reply = session.apply(line.strip())
        console.print(("[green]" if reply.changed else "[yellow]") + reply.text + "[/]", highlight=False)
    labelmap, names = session.labelmap()
    if session.state.done and names:
        for path in commit_files(labelmap_files(volume, labelmap, names, out)):
            console.print(f"wrote {path}")
    elif session.state.done:
        console.print("[yellow]nothing segmented: no mask written.[/]")
    else:
        console.print("[yellow]ended without 'done': nothing written.[/]")
