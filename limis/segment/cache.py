"""Embedding cache: encode each (volume, plane, slice, window) once, reuse for every prompt."""

from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

from limis.detect.base import SliceImage
from limis.segment.base import Embedding, Segmenter

DEFAULT_CACHE_BYTES = 1 << 30


def _nbytes(embedding: Embedding) -> int:
    features = embedding.features
    if hasattr(features, "element_size"):
        return int(features.element_size() * features.nelement())
    return int(getattr(features, "nbytes", 0))


class EmbeddingCache:
    """Least-recently-used store of slice embeddings for one segmenter, bounded in bytes.

    Lives with the session or the run that owns it, never inside the shared model.
    """

    def __init__(self, segmenter: Segmenter, max_bytes: int = DEFAULT_CACHE_BYTES, batch_size: int = 8) -> None:
        self.segmenter = segmenter
        self.max_bytes = max_bytes
        self.batch_size = batch_size
        self._store: OrderedDict[tuple, Embedding] = OrderedDict()
        self._bytes = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._store)

    def get(self, image: SliceImage) -> Embedding:
        return self.get_many([image])[0]

    def get_many(self, images: Sequence[SliceImage]) -> list[Embedding]:
        """Embeddings for the images, encoding only the misses, in batches of `batch_size`."""
        fresh: dict[tuple, Embedding] = {}
        missing = [im for im in {im.key: im for im in images}.values() if im.key not in self._store]
        self.hits += len(images) - len(missing)
        self.misses += len(missing)
        for start in range(0, len(missing), self.batch_size):
            chunk = missing[start : start + self.batch_size]
            fresh.update(zip((im.key for im in chunk), self.segmenter.embed([im.pixels for im in chunk])))
        found = []
        for image in images:
            if image.key in self._store:
                self._store.move_to_end(image.key)
                found.append(self._store[image.key])
            else:
                found.append(fresh[image.key])
        for key, embedding in fresh.items():
            self._put(key, embedding)
        return found

    def _put(self, key: tuple, embedding: Embedding) -> None:
        self._store[key] = embedding
        self._bytes += _nbytes(embedding)
        while self._bytes > self.max_bytes and len(self._store) > 1:
            _, dropped = self._store.popitem(last=False)
            self._bytes -= _nbytes(dropped)
