"""`limis example OUTDIR`: write the synthetic phantom CT with its labels."""

from __future__ import annotations

from pathlib import Path

import typer

from limis.cli.app import app, console


@app.command("example", epilog="Example: limis example limis-output/example")
def example(out_dir: Path = typer.Argument(Path("limis-output/example"), help="Folder to write into.")) -> None:
    """Write a small synthetic abdominal CT (not patient data) plus reference labels and their JSON names."""
    from limis.imaging.phantom import make_phantom

    for role, path in make_phantom(out_dir).items():
        console.print(f"{role:>9}: {path}")
