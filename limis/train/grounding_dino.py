"""Fine-tune transformers' Grounding DINO on labelmap slices with `accelerate`, resumable bit for bit.

A run folder holds run.json (config, versions), metrics.csv (train loss and lr per logging step,
validation means), validation.csv (AP50 and recall@0.5 per structure), curves.png,
checkpoints/step_NNNNNN (model, optimizer, scheduler, RNG states, stream position) and model/
(save_pretrained weights + processor that `GroundingDinoDetector.from_pretrained` loads). Step k
always trains on the same examples whatever the process count or interruptions, because the
stream is a function of (seed, position) and every random state travels in the checkpoint. On
CPUs a resumed run is bit-identical to an uninterrupted one; on GPUs nondeterministic CUDA
kernels (two fresh runs differ too) leave float-level differences.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from limis.errors import LimisError
from limis.train.augment import AugmentConfig
from limis.train.grounding_dino_data import CaptionBudget, collate, evenly_spaced, process_positions, stream_examples
from limis.train.grounding_dino_model import load_for_training
from limis.train.samples import SliceSample

MIXED_PRECISION = ("no", "bf16", "fp16")


@dataclass(frozen=True)
class GroundingDinoTrainConfig:
    """Everything that decides a training run's numbers; `steps` is the target (a resumed run may extend it)."""

    manifest: str
    model: str  # save_pretrained folder or cached hub id
    steps: int = 1000
    batch_size: int = 4  # per process
    lr: float = 1e-4
    weight_decay: float = 1e-4
    warmup_steps: int = 0  # linear warm-up, then constant (so extending a run changes no earlier step)
    max_grad_norm: float = 0.1
    lora_rank: int = 0  # 0: full fine-tune
    freeze_text_backbone: bool = True
    mixed_precision: str = "no"
    augment: bool = True
    distractors: int = 4
    seed: int = 0
    train_split: str = "train"
    val_split: str = "val"
    max_train_slices: int | None = None
    max_val_slices: int | None = None
    log_every: int = 10
    val_every: int = 200  # 0: never
    checkpoint_every: int = 200
    keep_checkpoints: int = 2


class StreamPosition:
    """The checkpointed training position: steps done and the loss sum of the open logging window."""

    def __init__(self) -> None:
        self.step, self.loss_sum, self.loss_count = 0, 0.0, 0

    def state_dict(self) -> dict[str, float]:
        return {"step": self.step, "loss_sum": self.loss_sum, "loss_count": self.loss_count}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.step, self.loss_count = int(state["step"]), int(state["loss_count"])
        self.loss_sum = float(state["loss_sum"])


def train_grounding_dino(
    config: GroundingDinoTrainConfig, out_dir: Path, resume: bool = False, report: Callable[[str], None] = print
) -> Path:
    """Train (or resume) into `out_dir`; returns the saved model folder. Run under `torchrun` for several processes."""
    _check(config)
    session = _Session(config, Path(out_dir), report)
    session.restore(resume)
    while session.position.step < config.steps:
        session.step()
    return session.finish()


class _Session:
    """One process's share of a run: the prepared model, optimizer and scheduler, the data, the run folder."""

    def __init__(self, config: GroundingDinoTrainConfig, out_dir: Path, report: Callable[[str], None]) -> None:
        try:
            from accelerate import Accelerator
            from accelerate.utils import DistributedDataParallelKwargs, set_seed
        except ImportError:
            raise LimisError("limis train needs accelerate: pip install 'limis[train]'.") from None

        self.config, self.out_dir = config, out_dir
        # Some weights never get a gradient: Swin's last layer norm, and the two-stage proposal head, whose
        # encoder loss transformers computes on detached tensors. DDP must be told to expect that.
        unused = DistributedDataParallelKwargs(find_unused_parameters=True)
        self.accelerator = Accelerator(mixed_precision=config.mixed_precision, cpu=not torch.cuda.is_available(),
                                       step_scheduler_with_optimizer=False, kwargs_handlers=[unused])
        self.main = self.accelerator.is_main_process
        self.report = report if self.main else (lambda _: None)
        # Data and weights load before run.json is written, so a typo never claims the folder for a broken config.
        manifest = _manifest(config)
        self.train, self.val = _samples(config, manifest, self.report)
        self.vocabulary = sorted(set(manifest.label_names.values()))
        self.augmentation = AugmentConfig() if config.augment else None
        set_seed(config.seed)
        model, self.processor = load_for_training(config.model, config.freeze_text_backbone, config.lora_rank)
        self.budget = CaptionBudget(self.processor.tokenizer, int(model.config.max_text_len))
        self.run = _claim(config, out_dir, self.accelerator.num_processes) if self.main else None
        self.accelerator.wait_for_everyone()
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.lr,
                                      weight_decay=config.weight_decay)
        warmup = max(1, config.warmup_steps)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda done: min(1.0, (done + 1) / warmup))
        self.model, self.optimizer, self.scheduler = self.accelerator.prepare(model, optimizer, scheduler)
        self.position = StreamPosition()
        self.accelerator.register_for_checkpointing(self.position)
        self.checkpoints = out_dir / "checkpoints"

    def restore(self, resume: bool) -> None:
        """Load the latest checkpoint when resuming; refuse to start over a folder that has checkpoints."""
        saved = sorted(self.checkpoints.glob("step_*")) if self.checkpoints.is_dir() else []
        if not resume:
            if saved:
                raise LimisError(f"{self.out_dir} already holds checkpoints; pass --resume or use a new --out folder.")
            return
        if not saved:
            raise LimisError(f"nothing to resume: {self.checkpoints} holds no checkpoint; run without --resume.")
        self.accelerator.load_state(str(saved[-1]))
        if self.run is not None:
            self.run.truncate_after(self.position.step)
            self._validation_log().truncate_after(self.position.step)
        self.report(f"resumed from {saved[-1].name} (step {self.position.step})")

    def step(self) -> None:
        """One optimizer step on this process's share of the global batch, then log, validate, checkpoint."""
        config, accelerator = self.config, self.accelerator
        positions = process_positions(self.position.step, config.batch_size, accelerator.process_index,
                                      accelerator.num_processes)
        examples = stream_examples(self.train, positions, config.seed, self.vocabulary, config.distractors,
                                   self.budget, self.augmentation)
        self.model.train()
        loss = self.model(**collate(examples, self.processor, accelerator.device)).loss
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(self.model.parameters(), config.max_grad_norm)
        lr = self.optimizer.param_groups[0]["lr"]
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.position.step += 1
        self.position.loss_sum += accelerator.reduce(loss.detach().float(), reduction="mean").item()
        self.position.loss_count += 1
        self._after_step(lr)

    def _after_step(self, lr: float) -> None:
        step, config = self.position.step, self.config
        row: dict[str, float] = {}
        if step % config.log_every == 0:
            row = {"loss": self.position.loss_sum / self.position.loss_count, "lr": lr}
            self.position.loss_sum, self.position.loss_count = 0.0, 0
        if self.val and config.val_every and step % config.val_every == 0:
            row.update(self._validate(step))
        if row and self.run is not None:
            self.run.log({"step": step, **row})
            self.report(f"step {step}: " + ", ".join(f"{k} {v:.4g}" for k, v in row.items()))
        if step % config.checkpoint_every == 0 or step == config.steps:
            self._checkpoint(step)

    def _validate(self, step: int) -> dict[str, float]:
        """Validation means on the main process (others wait); per-structure rows go to validation.csv."""
        from limis.train.grounding_dino_validate import structure_scores, summary

        means: dict[str, float] = {}
        if self.main:
            model = self.accelerator.unwrap_model(self.model)
            rows = structure_scores(model, self.processor, self.val, str(self.accelerator.device))
            self._validation_log().append(step, rows)
            means = summary(rows)
        self.model.train()
        self.accelerator.wait_for_everyone()
        return means

    def _validation_log(self):
        from limis.train.grounding_dino_validate import ValidationLog

        return ValidationLog(self.out_dir / "validation.csv")

    def _checkpoint(self, step: int) -> None:
        """save_state into checkpoints/step_NNNNNN (every process saves its RNG state), keep the newest few."""
        self.accelerator.save_state(str(self.checkpoints / f"step_{step:06d}"))
        self.accelerator.wait_for_everyone()
        if self.main:
            for old in sorted(self.checkpoints.glob("step_*"))[: -self.config.keep_checkpoints]:
                shutil.rmtree(old)
        self.accelerator.wait_for_everyone()

    def finish(self) -> Path:
        """Save the model (LoRA merged into the weights) and processor into out_dir/model; draw curves.png."""
        target = self.out_dir / "model"
        if self.main:
            trained = self.accelerator.unwrap_model(self.model)
            if self.config.lora_rank:
                trained = trained.merge_and_unload()
            trained.save_pretrained(target)
            self.processor.save_pretrained(target)
            self.run.plot()
            self.report(f"wrote {target}")
        self.accelerator.wait_for_everyone()
        return target


def _check(config: GroundingDinoTrainConfig) -> None:
    if config.mixed_precision not in MIXED_PRECISION:
        choices = ", ".join(MIXED_PRECISION)
        raise LimisError(f"--mixed-precision must be one of {choices}, not '{config.mixed_precision}'.")
    if config.mixed_precision == "fp16" and not torch.cuda.is_available():
        raise LimisError("--mixed-precision fp16 needs a GPU; use bf16 or no on a CPU.")
    if min(config.steps, config.batch_size, config.log_every, config.checkpoint_every, config.keep_checkpoints) < 1:
        raise LimisError("--steps, --batch-size, --log-every, --checkpoint-every and --keep-checkpoints must be >= 1.")
    if min(config.lora_rank, config.val_every, config.distractors, config.warmup_steps) < 0:
        raise LimisError("--lora-rank, --val-every, --distractors and --warmup-steps must be >= 0.")


def _claim(config: GroundingDinoTrainConfig, out_dir: Path, processes: int):
    """The run folder; run.json holds the config without `steps` (extending a run is allowed) plus the process count."""
    from limis.train.run_folder import TrainingRun

    fixed = {k: v for k, v in asdict(config).items() if k != "steps"}
    return TrainingRun(out_dir, {**fixed, "num_processes": processes})


def _manifest(config: GroundingDinoTrainConfig):
    from limis.eval.datasets import load_manifest

    return load_manifest(config.manifest)


def _samples(
    config: GroundingDinoTrainConfig, manifest: Any, report: Callable[[str], None]
) -> tuple[list[SliceSample], list[SliceSample]]:
    """(train, validation) samples; validation is empty when disabled or the manifest has no such split."""
    from limis.train.samples import manifest_samples

    train = evenly_spaced(list(manifest_samples(manifest, config.train_split)), config.max_train_slices)
    if not train:
        raise LimisError(f"split '{config.train_split}' of {config.manifest} has no labelled slice to train on.")
    if config.val_every == 0:
        return train, []
    if config.val_split not in {case.split for case in manifest.cases}:
        report(f"note: {config.manifest} has no '{config.val_split}' split; validation skipped "
               "(pass --val-split to name one).")
        return train, []
    return train, evenly_spaced(list(manifest_samples(manifest, config.val_split)), config.max_val_slices)
