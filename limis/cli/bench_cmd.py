"""`limis bench`: time and memory of cold, cached and naive 3D queries; prints ratios."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from limis.cli.app import app, console


@app.command("bench", epilog="Example: limis bench ct.nii.gz --labels ref.nii.gz --label-map map.json -s kidney_left -s spleen")
def bench(
    image: Path = typer.Argument(..., help="Image to benchmark on."),
    labels: Path = typer.Option(..., "--labels", help="Reference labelmap (oracle boxes keep detection cost out)."),
    label_map: Path = typer.Option(..., "--label-map", help="JSON id -> name table of --labels."),
    structures: list[str] = typer.Option(["kidney_left", "spleen"], "-s", "--structure", help="Structures per query."),
    segmenter: str = typer.Option("litemedsam", "--segmenter"),
    weights: str = typer.Option(None, "--weights"),
    device: str = typer.Option("cpu", "--device"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Benchmark the embedding cache: first query, second query, naive re-encoding loop."""
    from limis.detect.registry import build_detector
    from limis.imaging import load_image
    from limis.pipeline.bench import run_benchmark
    from limis.segment.builders import build_segmenter

    volume = load_image(image)
    detector = build_detector("oracle", volume=volume, labels=labels, label_map=label_map)
    report = run_benchmark(volume, detector, build_segmenter(segmenter, weights, device), structures)
    report.update({"image": str(image), "structures": structures, "segmenter": segmenter, "device": device})
    if as_json:
        console.print_json(json.dumps(report))
        return
    table = Table(title=f"limis bench: {', '.join(structures)} on {image.name} ({device})")
    for column in ("phase", "seconds", "peak RSS (MiB)", "slices encoded"):
        table.add_column(column)
    for phase in report["phases"]:
        table.add_row(phase["phase"], f"{phase['seconds']:.2f}", f"{phase['peak_rss_mib']:.0f}", str(phase["encoded_slices"]))
    console.print(table)
    console.print(f"second query is {report['speedup_second_vs_first']:.1f}x faster than the first, "
                  f"{report['speedup_second_vs_naive']:.1f}x faster than the naive loop; "
                  f"the cold query (encoder batch {report['encoder_batch_size']}) runs at "
                  f"{report['speedup_first_vs_naive']:.2f}x the naive loop's speed.")
