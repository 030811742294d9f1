"""Grounding DINO's set-prediction loss, safe for batches whose captions differ and for several processes.

transformers 5.x (`loss/loss_grounding_dino.py`) offsets image i's phrase indices by image i's own
phrase count instead of the count of all images before it, so a batch of 2 captions with different
phrase counts (or any batch of 3+) indexes the wrong phrases or fails with an IndexError. It also
divides the already averaged box count by the process count again. This module keeps its matcher,
focal and box losses and weights, and fixes those two steps. Install with `use_batch_safe_loss`.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from transformers.loss.loss_grounding_dino import GroundingDinoHungarianMatcher, GroundingDinoImageLoss

CLASS_WEIGHT = 2.0  # transformers weighs the focal loss by a fixed 2, not by a config field


class BatchSafeImageLoss(GroundingDinoImageLoss):
    """The criterion for one prediction head: Hungarian matching, then focal, L1, GIoU and cardinality terms."""

    def __init__(self, config: Any) -> None:
        matcher = GroundingDinoHungarianMatcher(class_cost=config.class_cost, bbox_cost=config.bbox_cost,
                                                giou_cost=config.giou_cost)
        super().__init__(matcher=matcher, focal_alpha=config.focal_alpha, losses=["labels", "boxes", "cardinality"])

    def forward(self, outputs: dict, targets: Sequence[dict]) -> dict[str, torch.Tensor]:
        """`outputs`: logits (B, Q, T), pred_boxes (B, Q, 4), label_maps (B x (phrases, T)), text_mask (B, Q, T)."""
        indices = self.matcher(outputs, targets)
        num_boxes = mean_box_count(targets, outputs["logits"].device)
        losses: dict[str, torch.Tensor] = {}
        for name in self.losses:
            losses.update(self.get_loss(name, outputs, targets, indices, num_boxes))
        return losses

    def _get_target_classes_one_hot(self, outputs: dict, targets: Sequence[dict], indices) -> torch.Tensor:
        """(B, Q, T) int64: each matched query's target phrase tokens, from the batch's stacked label maps."""
        label_maps = outputs["label_maps"]
        starts = torch.tensor([0, *[len(m) for m in label_maps[:-1]]]).cumsum(0).tolist()
        phrases = torch.cat([t["class_labels"][j] + start for t, (_, j), start in zip(targets, indices, starts)])
        onehot = torch.zeros_like(outputs["logits"], dtype=torch.long)
        onehot[self._get_source_permutation_idx(indices)] = torch.cat(label_maps)[phrases].to(torch.long)
        return onehot


def mean_box_count(targets: Sequence[dict], device: torch.device) -> float:
    """Target boxes per process, averaged over processes (at least 1): the DETR loss normaliser."""
    count = torch.tensor([float(sum(len(t["class_labels"]) for t in targets))], device=device)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.all_reduce(count)
        count /= torch.distributed.get_world_size()
    return max(count.item(), 1.0)


def batch_safe_loss(
    logits, labels, device, pred_boxes, config, label_maps, text_mask,
    outputs_class=None, outputs_coord=None, encoder_logits=None, encoder_pred_boxes=None, **_,
) -> tuple[torch.Tensor, dict[str, torch.Tensor], list[dict]]:
    """Drop-in for transformers' `GroundingDinoForObjectDetectionLoss`: (total, terms by name, auxiliary heads)."""
    criterion = BatchSafeImageLoss(config).to(device)
    text = {"label_maps": label_maps, "text_mask": text_mask}
    heads = {"": (logits, pred_boxes)}
    auxiliary: list[dict] = []
    if config.auxiliary_loss:
        auxiliary = [{"logits": c, "pred_boxes": b, **text} for c, b in zip(outputs_class[:-1], outputs_coord[:-1])]
        heads.update({f"_{i}": (head["logits"], head["pred_boxes"]) for i, head in enumerate(auxiliary)})
    if config.two_stage:
        heads["_enc"] = (encoder_logits, encoder_pred_boxes)
    weights = {"loss_ce": CLASS_WEIGHT, "loss_bbox": config.bbox_loss_coefficient,
               "loss_giou": config.giou_loss_coefficient}
    terms: dict[str, torch.Tensor] = {}
    total = torch.zeros((), device=logits.device)
    for suffix, (head_logits, head_boxes) in heads.items():
        part = criterion({"logits": head_logits, "pred_boxes": head_boxes, **text}, labels)
        total = total + sum(part[name] * weight for name, weight in weights.items())
        terms.update({name + suffix: value for name, value in part.items()})
    return total, terms, auxiliary


def use_batch_safe_loss(model: Any) -> Any:
    """Make a GroundingDinoForObjectDetection compute its training loss with `batch_safe_loss`; returns it."""
    model.loss_function = batch_safe_loss
    return model
