"""`limis bench`: one run, ratios only: cold 3D query per encoder runtime, cached query, edit latency, peak RSS."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import typer
from rich.table import Table

from limis.cli.app import app, console
from limis.cli.options import (
    DEFAULTS,
    DetectorOption,
    DetectorWeightsOption,
    DeviceOption,
    ModalityOption,
    ModelOptions,
    WeightsOption,
)

EPILOG = ("Example: limis bench ../shared/data/totalsegmentator_example/dicom_example_ct "
          "-s liver -s spleen -s aorta -s stomach --runtimes torch,onnxruntime,openvino")


@app.command("bench", epilog=EPILOG)
def bench(
    image: Path = typer.Argument(..., help="Image to benchmark on."),
    structures: list[str] = typer.Option(["liver", "spleen", "aorta", "stomach"], "-s", "--structure",
                                         help="Structures of the 3D query."),
    detector: DetectorOption = DEFAULTS.detector,
    detector_weights: DetectorWeightsOption = DEFAULTS.detector_weights,
    labels: Path = typer.Option(None, "--labels", help="Reference labelmap for the oracle detector."),
    label_map: Path = typer.Option(None, "--label-map", help="JSON id -> name table of --labels."),
    runtimes: str = typer.Option("torch,auto", "--runtimes",
                                 help="Encoder runtimes to compare, the reference first (masks are compared with it); "
                                      "auto is the one this machine would use."),
    weights: WeightsOption = DEFAULTS.weights,
    device: DeviceOption = DEFAULTS.device,
    modality: ModalityOption = None,
    edits: int = typer.Option(20, "--edits", help="Language edits timed on the last runtime."),
    segment_rss: bool = typer.Option(True, "--segment-rss/--no-segment-rss",
                                     help="Also run `limis segment` in a fresh process and report its peak RSS."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Benchmark LiteMedSAM encoder runtimes on one image, with the masks each gives."""
    from limis.eval.bench import run_benchmark, segment_command_peak
    from limis.imaging import load_image
    from limis.segment.runtime import choose_runtime

    chosen = list(dict.fromkeys(choose_runtime(r.strip(), device) if r.strip() == "auto" else r.strip()
                                for r in runtimes.split(",") if r.strip()))
    volume = load_image(image, modality=modality)
    options = {r: ModelOptions(weights=weights, runtime=r, detector=detector, detector_weights=detector_weights,
                               device=device) for r in chosen}
    segmenters = {r: o.build_segmenter() for r, o in options.items()}
    report = run_benchmark(volume, lambda cache: options[chosen[0]].build_detector(volume, cache, labels, label_map),
                           segmenters, structures, edits=edits)
    if segment_rss:
        with tempfile.TemporaryDirectory(prefix="limis-bench-") as folder:
            arguments = [str(image), *structures, "-o", str(Path(folder) / "out.nii.gz"), "--detector", detector,
                         "--runtime", chosen[-1], *(["--modality", modality] if modality else [])]
            peak = segment_command_peak(arguments)
        report["segment_command"] = {"runtime": chosen[-1], "peak_rss_mib": peak.peak_mib,
                                     "peak_private_mib": peak.private_mib, "exit_code": peak.exit_code}
    report.update({"image": image.name, "structures": structures, "detector": detector, "device": device})
    if as_json:
        console.print_json(json.dumps(report))
        return
    _print(report, chosen)


def _print(report: dict, runtimes: list[str]) -> None:
    table = Table(title=f"limis bench: {', '.join(report['structures'])} on {report['image']} ({report['device']})")
    for column in ("phase", "runtime", "seconds", "peak RSS (MiB)", "slices encoded"):
        table.add_column(column)
    for phase in report["phases"]:
        table.add_row(phase["phase"], phase["runtime"], f"{phase['seconds']:.2f}", f"{phase['peak_rss_mib']:.0f}",
                      str(phase["encoded_slices"]))
    console.print(table)
    reference = runtimes[0]
    for runtime, ratio in report[f"cold_speedup_vs_{reference}"].items():
        agreement = report[f"dice_vs_{reference}"][runtime]
        worst = min(agreement.values()) if agreement else float("nan")
        console.print(f"cold query with {runtime}: {ratio:.2f}x the speed of {reference}; "
                      f"lowest per-structure Dice vs {reference} {worst:.4f}; "
                      f"found {', '.join(report['found'][runtime]) or 'nothing'}")
    console.print(f"second query (cached embeddings): {report['cached_speedup_vs_cold']:.1f}x faster than its cold query")
    edit = report["edit_ms"]
    console.print(f"language edit on {edit['structure']}: median {edit['median']:.0f} ms over {edit['count']} edits"
                  if edit["count"] else f"language edit: {edit['structure']} not found on the opening slice; not timed")
    if "segment_command" in report:
        run = report["segment_command"]
        console.print(f"`limis segment --runtime {run['runtime']}` in a fresh process: peak RSS {run['peak_rss_mib']:.0f} MiB, "
                      f"of it private >= {run['peak_private_mib']:.0f} MiB (the rest: file-backed library pages) "
                      f"(exit {run['exit_code']})")
