"""Take the README's screenshot of a run's viewer, with the browser tooling of tests/test_viewer.py.

  python docs/screenshot_viewer.py runs/pets docs/viewer.png
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from playwright.sync_api import sync_playwright  # noqa: E402

from seglab.report.viewer import write_viewer  # noqa: E402
from test_viewer import CHROMIUM, CHROMIUM_ARGS  # noqa: E402


def main(run: str, out: str, samples: int = 4) -> None:
    html = write_viewer(run)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1180, "height": 800})
        page.goto(html.resolve().as_uri())
        page.wait_for_selector("#seglab-viewer[data-ready=true]")
        cards = page.locator("figure.card")
        box = cards.nth(min(samples, cards.count()) - 1).bounding_box()
        page.screenshot(path=out, clip={"x": 0, "y": 0, "width": 1180, "height": box["y"] + box["height"] + 8})
        browser.close()
    print(f"{out}: {Path(out).stat().st_size // 1024} KB")


if __name__ == "__main__":
    main(*sys.argv[1:3])
