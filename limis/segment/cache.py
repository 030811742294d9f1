"""Embedding cache: encode each (volume, plane, slice, window) once, reuse for every prompt."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Sequence

import torch

from limis.imaging.slice_image import SliceImage
from limis.segment.base import Embedding, Segmenter
from limis.staging import replaced_on_success

try:
    import fcntl
except ImportError:  # not POSIX: no cross-process claims on the disk cache
    fcntl = None

DEFAULT_CACHE_BYTES = 1 << 30


def _nbytes(embedding: Embedding) -> int:
    features = embedding.features
    if hasattr(features, "element_size"):
        return int(features.element_size() * features.nelement())
    return int(getattr(features, "nbytes", 0))


class EmbeddingCache:
    """Least-recently-used store of slice embeddings for one segmenter, bounded in bytes.

    Lives with the session or the run that owns it, never inside the shared model. With
    `disk_dir`, embeddings also persist as files, so reopening a case costs no encoding.
    """

    def __init__(
        self,
        segmenter: Segmenter,
        max_bytes: int = DEFAULT_CACHE_BYTES,
        batch_size: int | None = None,
        disk_dir: str | Path | None = None,
    ) -> None:
        self.segmenter = segmenter
        self.max_bytes = max_bytes
        # Batches pay off on a GPU; on CPU `limis bench` measured batch 8 at 0.71x the speed of
        # one slice per call (and 4x the peak memory), so CPU encodes one slice at a time.
        on_gpu = segmenter.device.type == "cuda"
        self.batch_size = batch_size or (8 if on_gpu else 1)
        self.disk_dir = Path(disk_dir) if disk_dir else None
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
        missing = [image for image in missing if not self._read_into(image, fresh)]
        encoded = self._encode(missing, fresh)
        self.hits += len(images) - encoded
        self.misses += encoded
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

    def _encode(self, images: Sequence[SliceImage], fresh: dict[tuple, Embedding]) -> int:
        """Put the embeddings of `images` in `fresh`, encoding in batches of `batch_size`; how many were encoded here.

        With `disk_dir`, a slice that another process (or thread) sharing the folder is encoding at this moment is
        not encoded again: it is read from that writer's file once written, so two demo sessions or test workers on
        one scan split its slices instead of each encoding all of them.
        """
        encoded, waiting = 0, []
        for start in range(0, len(images), self.batch_size):
            with self._claimed(images[start : start + self.batch_size]) as (mine, busy):
                mine = [image for image in mine if not self._read_into(image, fresh)]  # written while we looked
                self._embed_into(mine, fresh)
            encoded, waiting = encoded + len(mine), waiting + busy
        for image in waiting:
            with self._claimed([image], wait=True) as (mine, _):
                if mine and not self._read_into(image, fresh):  # its writer failed: encode it here
                    self._embed_into(mine, fresh)
                    encoded += 1
        return encoded

    def _embed_into(self, images: Sequence[SliceImage], fresh: dict[tuple, Embedding]) -> None:
        for image, embedding in zip(images, self.segmenter.embed([im.pixels for im in images]) if images else []):
            fresh[image.key] = embedding
            self._write_disk(image.key, embedding)

    def _read_into(self, image: SliceImage, fresh: dict[tuple, Embedding]) -> bool:
        stored = self._read_disk(image.key)
        if stored is not None:
            fresh[image.key] = stored
        return stored is not None

    @contextmanager
    def _claimed(self, images: Sequence[SliceImage], wait: bool = False) -> Iterator[tuple[list, list]]:
        """(images this caller may encode, images another holder is encoding), holding an exclusive lock on each
        claimed image's lock file in `disk_dir` for the block. Without `disk_dir` (or `fcntl`) every image is claimed."""
        if self.disk_dir is None or fcntl is None:
            yield list(images), []
            return
        self.disk_dir.mkdir(parents=True, exist_ok=True)
        mine, busy, held = [], [], []
        try:
            for image in images:
                handle = open(self._disk_path(image.key).with_suffix(".lock"), "a")
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
                except BlockingIOError:
                    handle.close()
                    busy.append(image)
                    continue
                except BaseException:
                    handle.close()
                    raise
                held.append(handle)
                mine.append(image)
            yield mine, busy
        finally:
            for handle in held:
                handle.close()  # closing the file releases its lock

    def release(self) -> None:
        """Drop every embedding held in memory (4 MiB per LiteMedSAM slice); files under `disk_dir` stay."""
        self._store.clear()
        self._bytes = 0

    def _disk_path(self, key: tuple) -> Path | None:
        """File for one embedding, namespaced by segmenter and its weights so models never mix."""
        if self.disk_dir is None:
            return None
        identity = (self.segmenter.name, self.segmenter.weights_path, key)
        return self.disk_dir / (hashlib.sha1(repr(identity).encode()).hexdigest() + ".pt")

    def _read_disk(self, key: tuple) -> Embedding | None:
        path = self._disk_path(key)
        if path is None or not path.is_file():
            return None
        try:
            saved = torch.load(str(path), map_location="cpu", weights_only=True)
            return Embedding(saved["features"], tuple(saved["original_size"]), tuple(saved["input_size"]))
        except Exception:  # a partial or stale file is only a cache miss
            return None

    def _write_disk(self, key: tuple, embedding: Embedding) -> None:
        path = self._disk_path(key)
        if path is None or not isinstance(embedding.features, torch.Tensor):
            return
        with replaced_on_success(path) as partial:  # demo sessions or test workers may write one key at once
            torch.save({"features": embedding.features.cpu(), "original_size": list(embedding.original_size),
                        "input_size": list(embedding.input_size)}, str(partial))

    def _put(self, key: tuple, embedding: Embedding) -> None:
        self._store[key] = embedding
        self._bytes += _nbytes(embedding)
        while self._bytes > self.max_bytes and len(self._store) > 1:
            _, dropped = self._store.popitem(last=False)
            self._bytes -= _nbytes(dropped)
