"""A Grounding DINO ready to fine-tune: loaded strictly and locally, batch-safe loss, optional LoRA adapters."""

from __future__ import annotations

from typing import Any

import torch

from limis.errors import LimisError

LORA_LAYERS = ("model.encoder.layers.", "model.decoder.layers.")  # LoRA goes on every linear layer under these


def load_for_training(name_or_dir: str, freeze_text_backbone: bool, lora_rank: int) -> tuple[Any, Any]:
    """(model, processor) from a save_pretrained folder or cached hub id; never downloads.

    The model computes its loss with `batch_safe_loss`; its BERT text backbone is frozen if asked;
    with `lora_rank` > 0 it is a peft model whose only trainable weights are the adapters.
    """
    from transformers import AutoProcessor, GroundingDinoForObjectDetection

    from limis.train.grounding_dino_loss import use_batch_safe_loss
    from limis.weights import load_transformers_model

    model, processor = load_transformers_model(GroundingDinoForObjectDetection, AutoProcessor, name_or_dir,
                                               "grounding-dino", "Grounding DINO", "--model")
    use_batch_safe_loss(model)
    if freeze_text_backbone:
        model.model.text_backbone.requires_grad_(False)
    if lora_rank:
        model = with_lora(model, lora_rank)
    return model, processor


def with_lora(model: Any, rank: int) -> Any:
    """LoRA (alpha = rank, no dropout) on the linear layers of the encoder and decoder layers; the rest frozen."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:
        raise LimisError("--lora-rank needs peft: pip install 'limis[train]'.") from None
    targets = [name for name, module in model.named_modules()
               if isinstance(module, torch.nn.Linear) and name.startswith(LORA_LAYERS)]
    # With `tie_word_embeddings` set, peft looks for weights tied to the input embeddings through
    # `get_input_embeddings`, which Grounding DINO lacks (it ties only its box heads); the flag, which
    # also keeps those box heads tied, is switched off only while the adapters are added.
    tied = model.config.tie_word_embeddings
    model.config.tie_word_embeddings = False
    try:
        return get_peft_model(model, LoraConfig(r=rank, lora_alpha=rank, lora_dropout=0.0, target_modules=targets))
    finally:
        model.config.tie_word_embeddings = tied
