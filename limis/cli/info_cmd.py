"""`limis info IMAGE`: geometry, orientation and safe metadata of an image."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import typer
from rich.table import Table

from limis.cli.app import app, console, print_warnings


def describe(path: Path, view: str = "radiological") -> dict:
    """Plain-data description of an image as LIMIS reads it (no patient identifiers)."""
    from limis.imaging import load_image

    volume = load_image(path, view=view)
    values = volume.array
    extent = [round(n * s, 2) for n, s in zip(volume.shape, volume.spacing)]
    return {
        "path": str(path),
        "kind": volume.source_kind,
        "modality": volume.modality,
        "source_shape": list(volume.source_shape),
        "source_orientation": "".join(volume.source_axcodes),
        "source_spacing_mm": [round(s, 6) for s in volume.source_spacing],
        "canonical_orientation": "RAS",
        "canonical_shape": list(volume.shape),
        "canonical_spacing_mm": [round(s, 6) for s in volume.spacing],
        "extent_mm": extent,
        "source_affine": np.round(volume.source_affine, 6).tolist(),
        "intensity_range": [float(values.min()), float(values.max())],
        "metadata": volume.metadata,
    }


@app.command("info", epilog="Example: limis info scan.nii.gz   |   limis info dicom_folder/ --json")
def info(
    image: Path = typer.Argument(..., help="NIfTI file, DICOM folder or .zip, or PNG/JPEG."),
    view: str = typer.Option("radiological", "--view", help="Screen convention of a 2D PNG/JPEG."),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """Show an image's geometry: shape, voxel spacing, orientation codes, modality."""
    facts = describe(image, view=view)
    print_warnings(facts["metadata"].get("warnings", []))
    if as_json:
        console.print_json(json.dumps(facts))
        return
    table = Table(title=f"[bold]{image}[/]", show_header=False)
    table.add_column("field", style="cyan")
    table.add_column("value")
    for key, value in facts.items():
        if key in ("path", "metadata", "source_affine"):
            continue
        table.add_row(key.replace("_", " "), _fmt(value))
    table.add_row("source affine (RAS+ mm)", "\n".join(" ".join(f"{v:9.3f}" for v in row) for row in facts["source_affine"]))
    for key, value in facts["metadata"].items():
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
