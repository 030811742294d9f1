"""Segmenter registry: strict, safe checkpoint loading with one-line messages naming the right model."""

from __future__ import annotations

from pathlib import Path

import pytest

from limis.errors import LimisError, WeightsNotFoundError
from limis.segment.builders import build_segmenter, litemedsam_checkpoint


def test_unknown_segmenter_lists_known_ones() -> None:
    with pytest.raises(LimisError, match="litemedsam"):
        build_segmenter("sam_vit_x")


def test_missing_meta_checkpoint_says_where_to_put_it(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("LIMIS_WEIGHTS_DIR", str(tmp_path))
    with pytest.raises(WeightsNotFoundError) as missing:
        build_segmenter("medsam_vit_b")
    message = str(missing.value)
    assert "medsam_vit_b.pth" in message and str(tmp_path) in message and "\n" not in message


def test_checkpoint_of_another_model_is_refused_by_name() -> None:
    """LiteMedSAM weights given to the Meta SAM ViT-B builder: strict loading names the mismatch."""
    with pytest.raises(LimisError) as wrong:
        build_segmenter("sam_vit_b", weights=litemedsam_checkpoint())
    assert "does not fit the SAM ViT-B architecture" in str(wrong.value) and "\n" not in str(wrong.value)


def test_unreadable_checkpoint(tmp_path: Path) -> None:
    junk = tmp_path / "lite_medsam.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsNotFoundError, match="not a readable PyTorch checkpoint"):
        build_segmenter("litemedsam", weights=junk)
