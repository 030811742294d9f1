"""Shared fixtures: offline environment, paths to the read-only shared data, one LiteMedSAM."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
if os.environ.get("PYTEST_XDIST_WORKER"):  # pytest -n N: the cores are shared out, never oversubscribed
    THREADS = max(1, (os.cpu_count() or 1) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    os.environ["OMP_NUM_THREADS"] = str(THREADS)  # also for the CLI and demo subprocesses the tests start
    torch.set_num_threads(THREADS)

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
TOTALSEG = SHARED / "totalsegmentator_example"
SAMMED2D = SHARED / "sammed2d_data_demo"
CHAOS = SHARED / "chaos_t2_mr"
# .ci/run sets this: in CI a test whose shared data is missing fails instead of skipping.
REQUIRE_SHARED_DATA = os.environ.get("LIMIS_REQUIRE_SHARED_DATA") == "1"


def missing_shared_data(message: str) -> None:
    """Skip on a developer machine without ../shared/data; fail in CI, where the data must be present."""
    if REQUIRE_SHARED_DATA:
        pytest.fail(f"{message}; CI must have it (LIMIS_REQUIRE_SHARED_DATA=1)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def totalseg_dir() -> Path:
    if not (TOTALSEG / "example_ct.nii.gz").exists():
        missing_shared_data(f"shared test data not found at {TOTALSEG} (needs ../shared/data beside the repo)")
    return TOTALSEG


@pytest.fixture(scope="session")
def chaos_dir() -> Path:
    if not (CHAOS / "cases.json").exists():
        missing_shared_data(f"CHAOS MR data not found at {CHAOS} (needs ../shared/data beside the repo)")
    return CHAOS


@pytest.fixture(scope="session")
def sammed2d_dir() -> Path:
    if not (SAMMED2D / "images").exists():
        missing_shared_data(f"shared 2D test data not found at {SAMMED2D} (needs ../shared/data beside the repo)")
    return SAMMED2D


@pytest.fixture(scope="session")
def total_names(totalseg_dir: Path) -> dict[int, str]:
    table = json.loads((totalseg_dir / "label_map.json").read_text())["total"]
    return {int(k): v for k, v in table.items()}


@pytest.fixture(scope="session")
def lps_copy(totalseg_dir: Path, tmp_path_factory) -> Path:
    """example_ct.nii.gz re-saved with LPS array order (same physical image)."""
    import nibabel as nib
    from nibabel import orientations as ornt

    image = nib.load(str(totalseg_dir / "example_ct.nii.gz"))
    transform = ornt.ornt_transform(ornt.io_orientation(image.affine), ornt.axcodes2ornt(("L", "P", "S")))
    resaved = image.as_reoriented(transform)
    path = tmp_path_factory.mktemp("lps") / "example_ct_lps.nii.gz"
    nib.save(resaved, str(path))
    return path


@pytest.fixture(scope="session", autouse=True)
def embedding_cache_dir(tmp_path_factory) -> Path:
    """One on-disk embedding cache for the whole test run, so each CT slice is encoded once.

    Under pytest -n the workers' temporary folders share a parent, and the cache lives there.
    """
    root = tmp_path_factory.getbasetemp()
    folder = (root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root) / "embeddings"
    folder.mkdir(exist_ok=True)
    os.environ["LIMIS_EMBEDDING_CACHE"] = str(folder)
    return folder


@pytest.fixture(scope="session")
def litemedsam():
    from limis.segment.builders import build_litemedsam

    return build_litemedsam()


class BoxSegmenter:
    """Test double for geometry and state tests: the mask is the box (minus negative points' pixels).

    Real segmentation quality is tested with LiteMedSAM; this only makes box edits observable fast.
    """

    name = "box-test-double"
    weights_path = None
    device = torch.device("cpu")

    def embed(self, slices):
        from limis.segment.base import Embedding

        return [Embedding(features=None, original_size=tuple(s.shape), input_size=tuple(s.shape)) for s in slices]

    def segment(self, embedding, prompts):
        import numpy as np

        from limis.segment.base import SegmentResult

        results = []
        for prompt in prompts:
            mask = np.zeros(embedding.original_size, dtype=bool)
            if prompt.box is not None:
                x0, y0, x1, y1 = (int(round(v)) for v in prompt.box)
                mask[y0 : y1 + 1, x0 : x1 + 1] = True
            for (x, y), label in zip(prompt.points, prompt.point_labels):
                mask[int(round(y)), int(round(x))] = bool(label)
            results.append(SegmentResult(mask=mask, score=1.0, logits=mask.astype("float32")))
        return results


@pytest.fixture()
def box_segmenter() -> BoxSegmenter:
    return BoxSegmenter()
