"""`limis train ...`: fine-tune detectors on labelmap slices (one command per model family)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from limis.cli.app import app, console, print_written

train_app = typer.Typer(help="Train text->box detectors on 2D slices of labelled volumes.", no_args_is_help=True)
app.add_typer(train_app, name="train")


@train_app.command(
    "grounding-dino",
    epilog="Examples: limis train grounding-dino --manifest evaluation/datasets/grounding_train.yaml "
    "--model IDEA-Research/grounding-dino-tiny --out runs/gdino --steps 2000 --lora-rank 16 --val-split test  |  "
    "two processes (GPUs, or CPUs with gloo): torchrun --nproc_per_node 2 -m limis.cli train grounding-dino ... "
    "or accelerate launch --multi_gpu --num_processes 2 -m limis.cli ... (accelerate's --cpu starts one)  |  "
    "continue or extend a run: add --resume (and a larger --steps).",
)
def grounding_dino(
    manifest: Path = typer.Option(..., "--manifest", help="Dataset manifest with a patient-level train split."),
    model: str = typer.Option(..., "--model", help="save_pretrained folder or cached hub id to start from."),
    out: Path = typer.Option(..., "--out", help="Run folder (run.json, metrics.csv, checkpoints/, model/)."),
    steps: int = typer.Option(1000, "--steps", help="Optimizer steps to reach (a resumed run may raise it)."),
    batch_size: int = typer.Option(4, "--batch-size", help="Slices per process and step."),
    lr: float = typer.Option(1e-4, "--lr"),
    weight_decay: float = typer.Option(1e-4, "--weight-decay"),
    warmup_steps: int = typer.Option(0, "--warmup-steps", help="Linear warm-up, then constant learning rate."),
    max_grad_norm: float = typer.Option(0.1, "--max-grad-norm", help="Gradient clipping norm."),
    lora_rank: int = typer.Option(0, "--lora-rank", help="LoRA rank on encoder/decoder linear layers; 0 = full."),
    freeze_text: bool = typer.Option(True, "--freeze-text-backbone/--train-text-backbone"),
    mixed_precision: str = typer.Option("no", "--mixed-precision", help="no | bf16 | fp16 (fp16 needs a GPU)."),
    augment: bool = typer.Option(True, "--augment/--no-augment", help="Window, rotation, scale, crop jitter."),
    distractors: int = typer.Option(4, "--distractors", help="Absent labels added to each caption."),
    seed: int = typer.Option(0, "--seed"),
    train_split: str = typer.Option("train", "--train-split"),
    val_split: str = typer.Option("val", "--val-split", help="Validation split; skipped with a note if absent."),
    max_train_slices: int = typer.Option(None, "--max-train-slices", help="Evenly spaced cap (smoke tests)."),
    max_val_slices: int = typer.Option(None, "--max-val-slices", help="Evenly spaced cap on validation slices."),
    log_every: int = typer.Option(10, "--log-every", help="Steps per metrics row (their mean train loss)."),
    val_every: int = typer.Option(200, "--val-every", help="0 = never validate."),
    checkpoint_every: int = typer.Option(200, "--checkpoint-every"),
    keep_checkpoints: int = typer.Option(2, "--keep-checkpoints"),
    resume: bool = typer.Option(False, "--resume", help="Continue from the newest checkpoint in --out."),
) -> None:
    """Fine-tune Grounding DINO (full or LoRA) with accelerate; save a model GroundingDinoDetector loads."""
    from limis.train.grounding_dino import GroundingDinoTrainConfig, train_grounding_dino

    config = GroundingDinoTrainConfig(
        manifest=str(manifest), model=model, steps=steps, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
        warmup_steps=warmup_steps, max_grad_norm=max_grad_norm, lora_rank=lora_rank, freeze_text_backbone=freeze_text,
        mixed_precision=mixed_precision, augment=augment, distractors=distractors, seed=seed, train_split=train_split,
        val_split=val_split, max_train_slices=max_train_slices, max_val_slices=max_val_slices, log_every=log_every,
        val_every=val_every, checkpoint_every=checkpoint_every, keep_checkpoints=keep_checkpoints,
    )
    train_grounding_dino(config, out, resume=resume, report=lambda line: console.print(line, highlight=False))


@train_app.command(
    "lite-grounding",
    epilog="Example (the shipped head): limis train lite-grounding "
    "--data evaluation/datasets/btcv_abdomen_ct.yaml:fold0,fold1,fold2,fold3 "
    "--data evaluation/datasets/chaos_t2_mr.yaml:fold0,fold1,fold2,fold3 "
    "--data evaluation/datasets/grounding_train.yaml:train --out runs/lite_grounding --cache-dir runs/embeddings --install",
)
def lite_grounding(
    data: list[str] = typer.Option(..., "--data",
                                   help="MANIFEST[:SPLITS], repeatable: e.g. btcv.yaml:fold1,fold2 (default split: train)."),
    out: Path = typer.Option(..., "--out", help="Run folder (run.json, metrics.csv, curves.png, the head)."),
    steps: int = typer.Option(3000, "--steps"),
    batch_size: int = typer.Option(8, "--batch-size"),
    lr: float = typer.Option(1e-3, "--lr"),
    zoom: float = typer.Option(0.15, "--zoom", help="Feature-space scale jitter (0 = off)."),
    seed: int = typer.Option(0, "--seed"),
    balance: float = typer.Option(0.0, "--balance", help="Draw slices of rare concepts more often: weight "
                                  "(commonest concept's slices / rarest present concept's)^BALANCE, capped at 4 (0 = uniform)."),
    slice_step: int = typer.Option(1, "--slice-step", help="Use every n-th slice (quick runs)."),
    context_slices: list[int] = typer.Option([0], "--context-slices", help="Neighbouring slices the head also reads on "
                                             "each side (1: the slices just above and below; 0: the slice alone). Repeat "
                                             "for an ensemble: one member head per value, probabilities averaged."),
    precision: str = typer.Option("bf16", "--precision", help="bf16 (the cross-validated recipe; fast on CPUs with "
                                  "AVX512-BF16/AMX, ~35x slower elsewhere) or fp32 (fast everywhere, another recipe)."),
    cache_dir: Path = typer.Option(None, "--cache-dir", envvar="LIMIS_EMBEDDING_CACHE",
                                   help="Slice embeddings (the segmenter's own); reruns and evaluations skip the encoder."),
    install: bool = typer.Option(False, "--install", help="Also overwrite the head shipped in the package."),
    cv_folds: str = typer.Option(None, "--cv-folds", help="e.g. fold0,fold1,fold2,fold3: one head per fold, trained "
                                 "without that fold's patients, in OUT/<fold>/ with held-out slice scores."),
) -> None:
    """Train the lite-grounding head on frozen LiteMedSAM embeddings (CPU is enough)."""
    from limis.detect.lite_grounding import default_weights
    from limis.train.lite_grounding import (
        LiteGroundingTrainConfig,
        cross_validate,
        final_losses,
        train_lite_grounding,
        write_model_card,
    )

    config = LiteGroundingTrainConfig(data=tuple(data), steps=steps, batch_size=batch_size, lr=lr, zoom=zoom, seed=seed,
                                      balance=balance, slice_step=slice_step, precision=precision,
                                      context_slices=context_slices[0] if len(context_slices) == 1 else 0,
                                      member_context=tuple(context_slices) if len(context_slices) > 1 else ())
    if cv_folds:
        for path in cross_validate(config, [f.strip() for f in cv_folds.split(",")], out, cache_dir,
                                   say=lambda line: console.print(line, highlight=False)):
            print_written(path)
        return
    model, run = train_lite_grounding(config, out, cache_dir, say=lambda line: console.print(line, highlight=False))
    targets = [out / "lite_grounding.safetensors"] + ([default_weights()] if install else [])
    for path in targets:
        model.save(path)
        write_model_card(model, path, final_losses(run))
        print_written(path)


@train_app.command(
    "combine-heads",
    epilog="Example (fold 0's ensemble from its heads of two recipes): limis train combine-heads "
    "--head runs/cv/heads/fold0/lite_grounding.safetensors --head runs/cv_context/heads/fold0/lite_grounding.safetensors "
    "--out runs/cv_ensemble/heads/fold0 --heldout fold0 --cache-dir runs/embeddings",
)
def combine_heads(
    head: list[Path] = typer.Option(..., "--head", help="lite-grounding head files trained on the same cases, repeatable."),
    out: Path = typer.Option(..., "--out", help="Folder for the ensemble's lite_grounding.safetensors."),
    heldout: str = typer.Option(None, "--heldout", help="The split the heads never trained on (e.g. fold0): also "
                                "write the ensemble's held-out slice scores there, as `--cv-folds` does."),
    cache_dir: Path = typer.Option(None, "--cache-dir", envvar="LIMIS_EMBEDDING_CACHE",
                                   help="Slice embeddings, for --heldout."),
) -> None:
    """Average the probabilities of separately trained heads (an ensemble); calibrate its presence afterwards."""
    from limis.detect.lite_grounding import LiteGroundingModel
    from limis.errors import LimisError
    from limis.eval.datasets import load_manifest
    from limis.train.lite_grounding import LiteGroundingTrainConfig, combine_heads, load_data, save_fold_head, write_model_card
    from limis.train.lite_grounding_data import DataSource

    model = combine_heads([LiteGroundingModel.load(path) for path in head])
    if not heldout:
        cards = [json.loads(path.with_suffix(".json").read_text()) for path in head if path.with_suffix(".json").is_file()]
        written = model.save(out / "lite_grounding.safetensors")
        write_model_card(model, written, [card["final_train_loss"] for card in cards if card.get("final_train_loss")])
        print_written(written)
        return
    sources = [DataSource.parse(text) for text in model.metadata["data"]]
    held = {case.case_id for source in sources for case in load_manifest(source.manifest).split(source.splits)
            if case.split == heldout}
    seen = held & set(model.metadata["training_cases"])
    if not held or seen:
        raise LimisError(f"--heldout {heldout}: " + (f"the heads trained on {len(seen)} of its cases" if seen else
                         "no case of the heads' training data is in that split") +
                         "; give the split these heads were trained without.")
    data = load_data(LiteGroundingTrainConfig(data=tuple(model.metadata["data"])), cache_dir,
                     say=lambda line: console.print(line, highlight=False))
    print_written(save_fold_head(model, data, heldout, out))


@train_app.command(
    "calibrate-presence",
    epilog="Example: limis train calibrate-presence --scores runs/cv/heads/fold1/heldout_slice_scores.npz ... "
    "--head runs/cv/heads/fold0/lite_grounding.safetensors --out runs/cv/heads/fold0/calibrated.safetensors",
)
def calibrate_presence(
    scores: list[Path] = typer.Option(..., "--scores", help="heldout_slice_scores.npz files of a --cv-folds run."),
    head: Path = typer.Option(..., "--head", help="lite-grounding head to give the thresholds to."),
    out: Path = typer.Option(..., "--out", help="Where to write the head with per-concept presence thresholds."),
    fp_rate: float = typer.Option(0.01, "--fp-rate", help="Share of held-out absent volumes a concept seen only "
                                  "absent may claim (concepts seen present: the F2 choice over slices)."),
) -> None:
    """Per-concept presence thresholds from held-out slice scores (patients the scoring heads never trained on)."""
    from dataclasses import replace

    from limis.detect.lite_grounding import LiteGroundingModel
    from limis.eval.report import markdown_table
    from limis.train.presence import absent_claims, presence_thresholds, read_scores, threshold_report, validated_concepts

    model = LiteGroundingModel.load(head)
    found = read_scores(scores)
    thresholds = presence_thresholds(found, model.config.presence_threshold, fp_rate)
    validated = validated_concepts(found)
    claims = absent_claims(found, thresholds, model.config.presence_threshold)
    config = replace(model.config, presence_thresholds=thresholds, validated=validated, absent_claims=claims)
    calibrated = LiteGroundingModel(model.head, model.text_table, config,
                                    {**model.metadata, "presence_calibration": {"fp_rate": fp_rate,
                                                                                "scores": [str(p) for p in scores]}})
    calibrated.save(out)
    card = head.with_suffix(".json")
    if card.is_file():  # carry the training card over, with the thresholds
        import json

        facts = json.loads(card.read_text())
        facts.update({"weights": out.name, "size_bytes": out.stat().st_size, "head_config": calibrated.config.__dict__,
                      "presence_calibration": calibrated.metadata["presence_calibration"]})
        out.with_suffix(".json").write_text(json.dumps(facts, indent=2))
    table = markdown_table(["concept", "threshold", "absent slices", "false-positive rate", "absent volumes",
                           "volumes claimed", "slices present", "recall"],
                           threshold_report(found, thresholds, model.config.presence_threshold))
    console.print(table, highlight=False)
    for modality, concepts in validated.items():
        console.print(f"reported on {modality}: {', '.join(concepts)}", highlight=False)
    for modality, claimed in claims.items():
        console.print("claimed on held-out {} volumes without it (its masks carry a caveat): {}".format(
            modality, ", ".join(f"{c} {n} of {of}" for c, (n, of) in claimed.items())), highlight=False)
    print_written(out)
