"""Tiny random-weight transformers models saved with `save_pretrained`, built offline for tests.

Each builder writes a folder that the LIMIS backends load back by path, so tests exercise the
same local-only loading path as real weights.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

# Grounding DINO hard-codes the ids of [CLS], [SEP], '.' and '?' (101, 102, 1012, 1029) to split the
# prompt into phrases, so the tiny vocabulary keeps bert-base-uncased's special ids.
BERT_SPECIAL_IDS = {"[PAD]": 0, "[UNK]": 100, "[CLS]": 101, "[SEP]": 102, "[MASK]": 103, ".": 1012, "?": 1029}
FIRST_WORD_ID = 1030


def vocabulary_words() -> list[str]:
    """Every lower-case word and punctuation mark of the label-list captions over the LIMIS vocabulary."""
    from limis.train.captions import caption_text
    from limis.vocab import all_structures

    text = caption_text([s.name for s in all_structures()])
    return sorted(set(re.findall(r"\w+|[^\w\s]", text)) | {"(", ")", ",", "-", "/"})


def tiny_bert_tokenizer(words: list[str]):
    """A BERT WordPiece tokenizer knowing exactly `words` (others become [UNK]), bert-base special ids."""
    from transformers import BertTokenizer

    vocab = dict(BERT_SPECIAL_IDS)
    for word in words:
        vocab.setdefault(word, FIRST_WORD_ID + len(vocab) - len(BERT_SPECIAL_IDS))
    return BertTokenizer(vocab=vocab)  # transformers 5 ignores vocab_file=; the dict must go in as vocab=


def save_tiny_grounding_dino(folder: Path, words: list[str] | None = None, seed: int = 0) -> Path:
    """A tiny Grounding DINO (Swin embed 8, d_model 32, BERT hidden 32, 10 queries) and its processor.

    Images are resized to 64 px on the short side (at most 96 px); text may be 256 tokens long
    like the real model's, so full label-list captions fit.
    """
    import torch
    from transformers import (
        BertConfig,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
        SwinConfig,
    )

    tokenizer = tiny_bert_tokenizer(words if words is not None else vocabulary_words())
    torch.manual_seed(seed)
    swin = SwinConfig(
        image_size=64, embed_dim=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1], window_size=7,
        out_features=["stage2", "stage3", "stage4"],
    )
    bert = BertConfig(
        vocab_size=max(tokenizer.get_vocab().values()) + 1, hidden_size=32, num_hidden_layers=1,
        num_attention_heads=2, intermediate_size=37, max_position_embeddings=256,
    )
    config = GroundingDinoConfig(
        backbone_config=swin, text_config=bert, d_model=32, encoder_layers=1,
        decoder_layers=2,  # 1 breaks the tied box-head weights on reload
        encoder_ffn_dim=32, decoder_ffn_dim=32, encoder_attention_heads=2, decoder_attention_heads=2,
        num_queries=10, encoder_n_points=2, decoder_n_points=2, max_text_len=256,
    )
    folder.mkdir(parents=True, exist_ok=True)
    GroundingDinoForObjectDetection(config).save_pretrained(folder)
    image_processor = GroundingDinoImageProcessor(size={"shortest_edge": 64, "longest_edge": 96})
    GroundingDinoProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny models gain nothing from intra-op threads, and on a busy 2-core runner spinning threads cost 10x."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
