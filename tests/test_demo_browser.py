"""The demo in a real headless browser: Debian's Chromium driven by Playwright (no browser download).

Example case, then a file upload of a phantom with its reference, then "left kidney" + Enter;
the test fails unless the displayed picture carries the kidney's overlay colour.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TIMEOUT_MS = 180_000  # generous: every wait is on a condition, so a loaded machine only makes it slower

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed at /usr/bin/chromium "
                       "(apt-get install -y chromium); the browser test needs it"),
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def served_demo(root: Path, segmenter, cache_dir: Path):
    from limis.demo.app import build_app, launch_options
    from limis.demo.config import DemoConfig
    from limis.pipeline.models import ModelOptions

    config = DemoConfig(port=free_port(), temp_dir=root / "served", log_dir=root / "logs",
                        models=ModelOptions(cache_dir=cache_dir))
    app = build_app(config, segmenter)
    app.launch(prevent_thread_lock=True, quiet=True, **launch_options(config))
    try:
        yield f"http://127.0.0.1:{config.port}/"
    finally:
        app.close()


def overlay_pixels(png: bytes, color: tuple[int, int, int]) -> int:
    """How many pixels of a PNG have exactly `color` (the mask outline is drawn in it)."""
    from PIL import Image

    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    return int(np.all(rgb == np.asarray(color, dtype=np.uint8), axis=-1).sum())


def shown_overlay(page, url: str, color: tuple[int, int, int]) -> int:
    """Overlay pixels in the picture the page displays now (fetched from the img element's src)."""
    from urllib.parse import urljoin

    source = page.locator("#limis-view img").first.get_attribute("src")
    return overlay_pixels(page.request.get(urljoin(url, source)).body(), color) if source else 0


def draw_box_over_spleen(page, image_path: Path) -> None:
    """Box fallback through real clicks: two opposite corners around the phantom's spleen (mid axial slice)."""
    from limis.imaging import load_image
    from limis.imaging.display import Plane, SliceGeometry

    volume = load_image(image_path)
    geometry = SliceGeometry(volume.shape, volume.affine, Plane.AXIAL, volume.shape[2] // 2)
    rows, cols = geometry.display_shape
    page.get_by_text("Draw a box instead").click()
    page.locator("#limis-box-structure").locator("textarea, input").first.fill("spleen")
    picture = page.locator("#limis-view img").first
    size = picture.bounding_box()
    for corner_mm in ((-90.0, -47.0, 0.0), (-60.0, -3.0, 0.0)):  # RAS mm around the spleen's cross-section
        row, col = geometry.patient_to_pixel(np.asarray(corner_mm))
        picture.click(position={"x": size["width"] * (col + 0.5) / cols, "y": size["height"] * (row + 0.5) / rows})
        page.wait_for_timeout(500)


def test_browser_example_upload_query_shows_the_overlay(tmp_path, litemedsam, embedding_cache_dir):
    from playwright.sync_api import expect, sync_playwright

    from limis.imaging import load_image
    from limis.imaging.export import label_color
    from limis.imaging.phantom import make_phantom

    case = make_phantom(tmp_path / "upload", seed=3)
    with served_demo(tmp_path, litemedsam, embedding_cache_dir) as url, sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
                                         chromium_sandbox=False)
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(url)
        status = page.locator("#limis-status")

        page.locator("#limis-example").click()
        expect(status).to_contain_text("Loaded the example phantom", timeout=TIMEOUT_MS)
        expect(page.locator("#limis-view img")).to_be_visible()

        for element, path in (("#limis-files", case["image"]), ("#limis-ref-labels", case["labels"]),
                              ("#limis-ref-map", case["label_map"])):
            page.locator(f"{element} input[type=file]").set_input_files(str(path))
            uploaded = page.locator(f"{element} a[href$='/{path.name}']")  # the finished upload's own link
            expect(uploaded).to_be_visible(timeout=TIMEOUT_MS)
        page.locator("#limis-load").click()
        expect(status).to_contain_text("Loaded phantom_ct.nii.gz", timeout=TIMEOUT_MS)
        assert shown_overlay(page, url, label_color(1)) == 0  # a session's first structure gets label id 1

        query = page.locator("#limis-query").locator("textarea, input").first
        query.fill("left kidney")
        query.press("Enter")
        expect(page.locator("#limis-legend [data-structure='kidney_left']")).to_be_visible(timeout=TIMEOUT_MS)
        expect(status).to_contain_text("Segmented Left kidney", timeout=TIMEOUT_MS)
        # the slider follows the arrow keys (image and number together), back to the middle slice for the box
        slider = page.locator("#limis-slice input[type=range]")
        current, middle = int(slider.input_value()), load_image(case["image"]).shape[2] // 2
        slider.focus()
        slider.press("ArrowRight")
        expect(status).to_contain_text(f"Now on axial slice {current + 1} ", timeout=TIMEOUT_MS)
        for _ in range(abs(middle - current - 1)):
            slider.press("ArrowLeft" if middle < current + 1 else "ArrowRight")
        expect(status).to_contain_text(f"Now on axial slice {middle} ", timeout=TIMEOUT_MS)
        page.wait_for_function("() => { const i = document.querySelector('#limis-view img');"
                               " return i && i.complete && i.naturalWidth > 0; }")
        draw_box_over_spleen(page, case["image"])
        expect(page.locator("#limis-legend [data-structure='spleen']")).to_be_visible(timeout=TIMEOUT_MS)
        expect(status).to_contain_text("Box set for Spleen", timeout=TIMEOUT_MS)
        shot = tmp_path / "demo_left_kidney.png"
        page.screenshot(path=str(shot), full_page=True)
        if os.environ.get("LIMIS_TEST_ARTIFACTS"):
            Path(os.environ["LIMIS_TEST_ARTIFACTS"]).mkdir(parents=True, exist_ok=True)
            shutil.copy(shot, Path(os.environ["LIMIS_TEST_ARTIFACTS"]) / shot.name)
        pixels = {name: shown_overlay(page, url, label_color(label_id)) for name, label_id in
                  (("kidney_left", 1), ("spleen", 2))}
        browser.close()
    assert min(pixels.values()) >= 50, f"overlay outline pixels {pixels} too few in the displayed picture; see {shot}"
