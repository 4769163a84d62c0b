"""The mask viewer, opened from disk in a real headless Chromium: what it renders, not only its DOM.

The browser is Debian's chromium (`make test` installs it), driven by Playwright. Without it these
tests skip, unless SEGLAB_REQUIRE_BROWSER=1 (set by `make test`) makes its absence a failure.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from seglab.data.classes import ClassSpec
from seglab.report.viewer import viewer_data, write_viewer
from seglab.runs import Run
from seglab.runs.samples import Epoch, SampleLog
from seglab.scoring.metrics import per_class_iou

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Chromium's own background traffic (updates, sync, field trials) is switched off, so every
# request the page makes is the page's own.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-default-apps"]
SCREENSHOTS = Path(os.environ.get("SEGLAB_SCREENSHOTS", "")) if os.environ.get("SEGLAB_SCREENSHOTS") else None

CLASSES = ClassSpec(("background", "pet", "border"), ((0, 0, 0), (255, 0, 0), (0, 0, 255)))
GRAY = 100.0
ALPHA = 0.6  # the viewer's default opacity


def _blend(color):
    return [GRAY * (1 - ALPHA) + c * ALPHA for c in color]


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        if os.environ.get("SEGLAB_REQUIRE_BROWSER") == "1":
            pytest.fail("chromium is not installed: `make test` installs it (apt-get install chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium, or run `make test`, which installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    """A page that records every request and aborts any that leaves the file it opened."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.requests, page.errors = [], []
    page.on("request", lambda r: page.requests.append(r.url))
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)
    context.route(lambda url: not url.startswith("file://"), lambda route: route.abort())
    yield page
    context.close()


def _open(page, html: Path):
    page.goto(html.resolve().as_uri())
    page.wait_for_selector("#seglab-viewer[data-ready]", timeout=30_000)
    assert page.get_attribute("#seglab-viewer", "data-ready") == "true", page.errors
    return page


def _pixel(page, sample: str, y: int, x: int) -> list[int]:
    return page.evaluate("""([name, y, x]) => {
        const canvas = document.querySelector(`canvas.sample[data-sample="${name}"]`);
        return Array.from(canvas.getContext("2d").getImageData(x, y, 1, 1).data.slice(0, 3));
    }""", [sample, y, x])


def _canvas(page, sample: str) -> np.ndarray:
    data = page.evaluate("""(name) => {
        const c = document.querySelector(`canvas.sample[data-sample="${name}"]`);
        return Array.from(c.getContext("2d").getImageData(0, 0, c.width, c.height).data);
    }""", sample)
    return np.array(data, np.uint8)


def _shot(page, name: str) -> bytes:
    """A screenshot of the first sample's card: what a person sees, kept when SEGLAB_SCREENSHOTS is set."""
    picture = page.locator("figure.card").first.screenshot()
    if SCREENSHOTS:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        (SCREENSHOTS / f"{name}.png").write_bytes(picture)
    return picture


def _close(actual, expected, tolerance=4):
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected))


@pytest.fixture(scope="module")
def known_run(tmp_path_factory) -> Path:
    """A run folder whose samples are made by hand: a gray image; truth: the left half pet;
    epoch 1 predicts all background, epoch 2 the top half pet. Sample 'good' predicts the truth."""
    path = tmp_path_factory.mktemp("viewer") / "run"
    path.mkdir()
    Run(path).write_state(status="complete", epochs_done=2)
    truth = np.zeros((32, 32), np.uint8)
    truth[:, :16] = 1
    truths = np.stack([truth, truth])
    images = np.full((2, 32, 32, 3), GRAY, np.uint8)
    log = SampleLog(path)
    log.start(["bad", "good"], images, truths, CLASSES)
    top = np.zeros_like(truth)
    top[:16] = 1
    for epoch, first in ((1, np.zeros_like(truth)), (2, top)):
        predictions = np.stack([first, truth])
        log.add(Epoch(epoch, predictions, per_class_iou(truths, predictions, CLASSES)), CLASSES)
    return path


def test_the_viewer_data_holds_every_epoch_and_class(known_run):
    data = viewer_data(known_run)
    assert data["epochs"] == [1, 2] and [c["name"] for c in data["classes"]] == ["background", "pet", "border"]
    assert [s["name"] for s in data["samples"]] == ["bad", "good"]
    assert data["samples"][0]["iou"] == [[0.5, 0.0, None], [0.3333, 0.3333, None]]
    assert all(len(s["predictions"]) == 2 and s["image"].startswith("data:image/jpeg;base64,") for s in data["samples"])


def test_toggling_classes_layers_and_epochs_changes_what_is_drawn(known_run, page):
    html = write_viewer(known_run)
    _open(page, html)
    top_left, bottom_left, top_right = (4, 4), (28, 4), (4, 28)
    # The last epoch, prediction layer: the top half is pet, the rest background (black, blended).
    assert _close(_pixel(page, "bad", *top_left), _blend((255, 0, 0)))
    assert _close(_pixel(page, "bad", *top_right), _blend((255, 0, 0)))
    assert _close(_pixel(page, "bad", *bottom_left), _blend((0, 0, 0)))
    before = _shot(page, "1-prediction-epoch-2")

    page.uncheck('input[data-class="pet"]')
    assert _close(_pixel(page, "bad", *top_left), (GRAY,) * 3)  # pet switched off: the bare image
    assert _close(_pixel(page, "bad", *bottom_left), _blend((0, 0, 0)))  # background still drawn
    assert _shot(page, "2-pet-off") != before
    page.check('input[data-class="pet"]')

    page.uncheck('input[data-layer="prediction"]')
    page.check('input[data-layer="truth"]')
    assert _close(_pixel(page, "bad", *bottom_left), _blend((255, 0, 0)))  # truth: the left half is pet
    assert _close(_pixel(page, "bad", *top_right), _blend((0, 0, 0)))
    _shot(page, "3-ground-truth")
    page.check('input[data-layer="prediction"]')
    page.uncheck('input[data-layer="truth"]')

    page.click('button[data-action="prev-epoch"]')
    assert page.get_attribute("#seglab-viewer", "data-epoch") == "1"
    assert _close(_pixel(page, "bad", *top_left), _blend((0, 0, 0)))  # epoch 1 predicted all background
    assert _shot(page, "4-prediction-epoch-1") != before
    page.click('button[data-action="next-epoch"]')
    assert _close(_pixel(page, "bad", *top_left), _blend((255, 0, 0)))

    opaque = _canvas(page, "bad")
    page.fill('input[data-control="opacity"]', "0")
    assert _close(_pixel(page, "bad", *top_left), (GRAY,) * 3)  # opacity 0: no mask at all
    assert not np.array_equal(opaque, _canvas(page, "bad"))
    assert not page.errors


def test_samples_sort_worst_first_or_in_file_order(known_run, page):
    _open(page, write_viewer(known_run))
    assert page.get_attribute("#seglab-viewer", "data-order") == "bad|good"
    cards = page.locator("figure.card").evaluate_all("cards => cards.map(c => c.dataset.sample)")
    assert cards == ["bad", "good"]
    page.select_option('select[data-control="sort"]', "file")
    assert page.get_attribute("#seglab-viewer", "data-order") == "bad|good"


def test_the_viewer_makes_no_network_request(known_run, page):
    html = write_viewer(known_run)
    text = html.read_text()
    assert "http://" not in text and "https://" not in text and "//cdn" not in text
    _open(page, html)
    page.click('button[data-action="prev-epoch"]')
    assert page.requests == [html.resolve().as_uri()]


def test_report_embeds_the_viewer(tiny_run, page):
    from seglab.report.html import write_report

    report = write_report(tiny_run.path)
    _open(page, report)
    assert page.locator("canvas.sample").count() == 2
    assert page.requests == [report.resolve().as_uri()]
    assert not page.errors


def test_seglab_view_writes_the_viewer_without_opening_a_browser(tiny_run):
    result = subprocess.run([sys.executable, "-m", "seglab", "view", str(tiny_run.path), "--no-open"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "viewer.html" in result.stdout and (tiny_run.path / "viewer.html").is_file()
    size = (tiny_run.path / "viewer.html").stat().st_size
    assert size < 200_000, size


def test_seglab_view_on_a_run_without_samples_says_why(tmp_path):
    Run(tmp_path).write_state(status="complete")
    result = subprocess.run([sys.executable, "-m", "seglab", "view", str(tmp_path), "--no-open"],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "no per-epoch samples" in result.stderr


@pytest.mark.slow
@pytest.mark.shared
def test_a_run_on_oxford_pets_in_the_viewer(shared_data, shared_weights, tmp_path_factory, page):
    """The issue's check on real data: switching off 'pet', switching to the ground truth and stepping
    back an epoch each change the rendered sample."""
    import seglab

    run = seglab.train(str(shared_data / "oxford-pets"), tmp_path_factory.mktemp("pets") / "run", model="mobilenet_unet",
                       weights=str(shared_weights / "mobilenet_v2_1.0_notop.weights.h5"), size=64, epochs=2,
                       batch_size=32, verbose=0)
    _open(page, write_viewer(run.path))
    first = json.loads((run.path / "samples" / "samples.json").read_text())["names"][0]
    views = [_canvas(page, first)]
    page.uncheck('input[data-class="pet"]')
    views.append(_canvas(page, first))
    page.check('input[data-class="pet"]')
    page.uncheck('input[data-layer="prediction"]')
    page.check('input[data-layer="truth"]')
    views.append(_canvas(page, first))
    page.check('input[data-layer="prediction"]')
    page.uncheck('input[data-layer="truth"]')
    page.click('button[data-action="prev-epoch"]')
    views.append(_canvas(page, first))
    prediction, pet_off, truth, epoch_1 = views
    for changed in (pet_off, truth, epoch_1):  # each against the prediction of the last epoch
        assert not np.array_equal(prediction, changed)
    assert page.requests == [(run.path / "viewer.html").resolve().as_uri()]


def test_seglab_view_and_report_load_no_tensorflow(tiny_run, tmp_path):
    """Writing HTML from a run folder needs no TensorFlow: importing it would cost seconds."""
    code = ("import sys\nfrom seglab.cli import app\nfrom typer.testing import CliRunner\n"
            f"for verb in (['view', {str(tiny_run.path)!r}, '--no-open'], ['report', {str(tiny_run.path)!r}]):\n"
            "    result = CliRunner().invoke(app, verb)\n    assert result.exit_code == 0, result.output\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
