"""`limis info IMAGE`: geometry, orientation and safe metadata of an image."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from limis.cli.app import app, console, print_warnings
from limis.cli.options import ModalityOption


def describe(path: Path, view: str = "radiological", modality: str | None = None) -> dict:
    """The run-report schema without the run: environment, shipped models, and the input as LIMIS reads it
    (geometry, intensity range, safe metadata; no patient identifiers, no file name)."""
    from limis.eval.provenance import report, shipped_models
    from limis.imaging import load_image

    volume = load_image(path, view=view, modality=modality)
    facts = report(volume, command="info")
    facts["models"] = shipped_models()
    facts["input"].update({
        "extent_mm": [round(n * s, 2) for n, s in zip(volume.shape, volume.spacing)],
        "intensity_range": [float(volume.array.min()), float(volume.array.max())],
        "metadata": volume.metadata,
    })
    return facts


@app.command("info", epilog="Example: limis info scan.nii.gz   |   limis info dicom_folder/ --json")
def info(
    image: Path = typer.Argument(..., help="NIfTI file, DICOM folder or .zip, or PNG/JPEG."),
    view: str = typer.Option("radiological", "--view", help="Screen convention of a 2D PNG/JPEG."),
    modality: ModalityOption = None,
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON (the run-report schema)."),
) -> None:
    """Show an image's geometry: shape, voxel spacing, orientation codes, modality."""
    facts = describe(image, view=view, modality=modality)
    found = facts["input"]
    print_warnings(found["metadata"].get("warnings", []))
    if as_json:
        console.print_json(json.dumps(facts))
        return
    table = Table(title=f"[bold]{image}[/]", show_header=False)
    table.add_column("field", style="cyan")
    table.add_column("value")
    for key, value in found.items():
        if key in ("metadata", "source_affine"):
            continue
        table.add_row(key.replace("_", " "), _fmt(value))
    table.add_row("source affine (RAS+ mm)", "\n".join(" ".join(f"{v:9.3f}" for v in row) for row in found["source_affine"]))
    for key, value in found["metadata"].items():
        if key == "warnings":  # already printed, one line each
            continue
        table.add_row(f"meta: {key}", _fmt(value))
    console.print(table)
    console.print(
        "Orientation codes give the direction each array axis increases toward (patient's R/L, A/P, S/I). "
        "Displays are radiological: patient's left on the screen's right."
    )


def _fmt(value) -> str:
    if isinstance(value, list):
        return " x ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
    return str(value)
