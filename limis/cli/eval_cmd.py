"""`limis eval accuracy | interaction | usability`: every reported number from one command."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from limis.cli.app import app, console, print_written
from limis.cli.options import (
    DEFAULTS,
    CacheDirOption,
    DetectorOption,
    DetectorWeightsOption,
    DeviceOption,
    ModelOptions,
    RuntimeOption,
    SegmenterOption,
    WeightsOption,
)

eval_app = typer.Typer(help="Evaluate accuracy, simulated interaction and usability studies.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")


@eval_app.command("accuracy", epilog="Example: limis eval accuracy --dataset evaluation/datasets/totalseg_example.yaml "
                  "--mode oracle-box -s liver -s spleen --out runs/acc")
def accuracy(
    dataset: Path = typer.Option(..., "--dataset", help="Dataset manifest (YAML/JSON)."),
    mode: str = typer.Option("oracle-box", "--mode", help="oracle-box | text | interactive."),
    split: str = typer.Option("test", "--split", help="Patient-level split to evaluate."),
    structures: list[str] = typer.Option(None, "-s", "--structure", help="Structures (default: all in the reference)."),
    out: Path = typer.Option(Path("runs/accuracy"), "--out", help="Output folder (one subfolder per mode)."),
    segmenter: SegmenterOption = DEFAULTS.segmenter,
    weights: WeightsOption = DEFAULTS.weights,
    runtime: RuntimeOption = DEFAULTS.runtime,
    detector: DetectorOption = DEFAULTS.detector,
    detector_weights: DetectorWeightsOption = DEFAULTS.detector_weights,
    tolerance_mm: float = typer.Option(2.0, "--nsd-tolerance-mm"),
    turns: int = typer.Option(5, "--turns", help="Simulated-user turns for --mode interactive."),
    device: DeviceOption = DEFAULTS.device,
    cache_dir: CacheDirOption = DEFAULTS.cache_dir,
    absent: list[str] = typer.Option(None, "--absent", help="Text mode: also ask these where the reference lacks them "
                                     "(absent.csv: any mask is a false positive), e.g. --absent brain."),
) -> None:
    """Per case x structure Dice/IoU/NSD/HD95/volume error, summary with bootstrap CIs, plots, provenance."""
    from limis.eval.accuracy import run_accuracy
    from limis.eval.datasets import load_manifest

    manifest = load_manifest(dataset)
    models = ModelOptions(segmenter, weights, runtime, detector, detector_weights, device, cache_dir)
    factory = models.build_detector if mode == "text" else None  # (volume, cache) -> detector
    summary = run_accuracy(manifest, split, mode, structures or None, out, models.build_segmenter(), factory, tolerance_mm, turns,
                           cache_dir=cache_dir, absent=list(absent or []))
    console.print((out / mode / "summary.md").read_text() if summary else "no rows (nothing to evaluate).")
    print_written(out / mode)


@eval_app.command("interaction", epilog="Example: limis eval interaction --dataset evaluation/datasets/btcv_abdomen_ct.yaml "
                  "--split fold0 -s liver -s kidney_left --detector-weights heads/fold0/calibrated.safetensors --out runs/int")
def interaction(
    dataset: Path = typer.Option(..., "--dataset"),
    split: str = typer.Option("test", "--split"),
    structures: list[str] = typer.Option(None, "-s", "--structure"),
    turns: int = typer.Option(10, "--turns", help="K: interactions per run after the text query."),
    stop_dice: float = typer.Option(0.9, "--stop-dice", help="A user accepts the mask once its 3D Dice reaches this."),
    users: str = typer.Option("language,clicks,boxes", "--users", help="Simulated users, comma-separated."),
    seed: int = typer.Option(0, "--seed", help="Seeds the users' noise (step sizes, wrong words, box jitter)."),
    out: Path = typer.Option(Path("runs/interaction"), "--out"),
    detector: DetectorOption = DEFAULTS.detector,
    detector_weights: DetectorWeightsOption = DEFAULTS.detector_weights,
    segmenter: SegmenterOption = DEFAULTS.segmenter,
    weights: WeightsOption = DEFAULTS.weights,
    runtime: RuntimeOption = DEFAULTS.runtime,
    device: DeviceOption = DEFAULTS.device,
    cache_dir: CacheDirOption = DEFAULTS.cache_dir,
) -> None:
    """Language vs clicks vs boxes in 3D from the text detector's answer: Dice per turn, NoI@85/90, fail@K, AUC."""
    from limis.errors import LimisError
    from limis.eval.datasets import load_manifest
    from limis.eval.interaction import run_interaction
    from limis.eval.robots import USERS

    chosen = tuple(u.strip() for u in users.split(",") if u.strip())
    unknown = [u for u in chosen if u not in USERS]
    if unknown or not chosen:
        raise LimisError(f"unknown --users {', '.join(unknown) or '(none)'}; choose from: {', '.join(USERS)}.")
    models = ModelOptions(segmenter, weights, runtime, detector, detector_weights, device, cache_dir)
    summary = run_interaction(load_manifest(dataset), split, structures or None, out, models.build_segmenter(),
                              models.build_detector, turns, stop_dice, cache_dir, chosen, seed)
    console.print((out / "summary.md").read_text() if summary else "no runs.")


@eval_app.command("usability", epilog="Example: limis eval usability study_logs/ --out runs/usability")
def usability(
    logdir: Path = typer.Argument(..., help="Folder of interaction logs (*.jsonl) and questionnaires."),
    out: Path = typer.Option(Path("runs/usability"), "--out"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """SUS and raw NASA-TLX per participant, task times, interactions per task, Dice at acceptance."""
    from limis.eval.usability import run_usability

    summary = run_usability(logdir, out)
    if as_json:
        console.print_json(json.dumps(summary, default=str))
    else:
        console.print((out / "report.md").read_text())


@eval_app.command("grounding", epilog="Example: limis eval grounding --dataset evaluation/datasets/grounding_train.yaml "
                  "--split test --prior-dataset evaluation/datasets/grounding_train.yaml -s liver -s spleen "
                  "-s kidney_left --out runs/grounding")
def grounding(
    dataset: Path = typer.Option(..., "--dataset", help="Dataset manifest to evaluate on."),
    split: str = typer.Option("test", "--split"),
    structures: list[str] = typer.Option(..., "-s", "--structure", help="Structures to ask for (absent ones too)."),
    prior_dataset: Path = typer.Option(None, "--prior-dataset",
                                       help="Manifest whose 'train' split fits the body-normalised box-prior baseline."),
    detector_weights: DetectorWeightsOption = DEFAULTS.detector_weights,
    out: Path = typer.Option(Path("runs/grounding"), "--out"),
    runtime: RuntimeOption = DEFAULTS.runtime,
    device: DeviceOption = DEFAULTS.device,
    cache_dir: CacheDirOption = DEFAULTS.cache_dir,
) -> None:
    """lite-grounding vs the box-prior baseline vs ground-truth boxes: box IoU, presence, 3D Dice after LiteMedSAM."""
    from limis.detect.lite_grounding import LiteGroundingDetector
    from limis.detect.oracle import OracleDetector
    from limis.eval.box_prior import BoxPriorDetector
    from limis.eval.datasets import load_manifest
    from limis.eval.grounding import run_grounding_eval
    from limis.pipeline.registry import load_lite_grounding
    from limis.train.samples import manifest_samples

    model = ModelOptions(runtime=runtime, device=device).build_segmenter()  # the head reads LiteMedSAM embeddings
    learned = load_lite_grounding(detector_weights)
    prior = BoxPriorDetector.fit(manifest_samples(load_manifest(prior_dataset), "train")) if prior_dataset else None

    def detectors(volume, labels, names, cache) -> dict:
        chosen = {"lite-grounding": LiteGroundingDetector(learned, cache)}
        if prior is not None:
            chosen["box-prior"] = prior
        chosen["ground-truth box"] = OracleDetector(labels, names)
        return chosen

    run_grounding_eval(load_manifest(dataset), split, structures, out, detectors, model, cache_dir,
                       say=lambda text: console.print(text, highlight=False))
    console.print((out / "summary.md").read_text())


@eval_app.command("compare", epilog="Example (4-fold cross-validation): limis eval compare --text runs/cv/btcv_fold0/text "
                  "--text runs/cv/btcv_fold1/text ... --box runs/cv/btcv_box/oracle-box --out runs/cv/btcv.md")
def compare(
    text: list[Path] = typer.Option(..., "--text", help="Text-mode folders of `eval accuracy` (one per fold)."),
    box: list[Path] = typer.Option(..., "--box", help="oracle-box folders of `eval accuracy` on the same cases."),
    target: list[str] = typer.Option(None, "--target", help="STRUCTURE=RATIO, e.g. liver=0.90 (marks met/missed)."),
    out: Path = typer.Option(None, "--out", help="Write the markdown table here too."),
) -> None:
    """Pool folds: text-mode Dice vs ground-truth-box Dice per structure, with the ratio and its paired bootstrap CI."""
    from limis.errors import LimisError
    from limis.eval.crossval import absent_table, compare_modes, comparison_table

    goals = {}
    for item in target or []:
        name, _, value = item.partition("=")
        try:
            goals[name.strip()] = float(value)
        except ValueError as error:
            raise LimisError(f"--target {item!r}: give STRUCTURE=RATIO, e.g. liver=0.90.") from error
    table = comparison_table(compare_modes(text, box), goals) + "\n\n" + absent_table(text)
    console.print(table, highlight=False)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(table + "\n")
        print_written(out)
