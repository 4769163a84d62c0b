"""The interactive mask viewer: a run's validation samples, epoch by epoch, with the predicted and
the true mask as switchable layers (see viewer.js). One self-contained HTML file, opened straight
from disk; `seglab report` embeds the same viewer in report.html.

Images and masks are embedded as data URIs. Masks go in as grayscale PNGs of class indices (not
the palette PNGs of the run folder) so the page can read the indices back and colour each class
itself.
"""
from __future__ import annotations

import base64
import html
import io
import json
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image

from seglab.core.errors import NotFound
from seglab.data.classes import ClassSpec
from seglab.runs import Run, write_text
from seglab.runs.samples import SampleLog


def _data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def _index_png(path: Path) -> str:
    """An indexed mask PNG -> a grayscale PNG data URI whose pixel values are the class indices."""
    labels = np.asarray(Image.open(path))  # a 'P' image reads as its indices
    buffer = io.BytesIO()
    Image.fromarray(labels.astype(np.uint8), mode="L").save(buffer, format="PNG", optimize=True)
    return _data_uri(buffer.getvalue(), "image/png")


def viewer_data(run_path) -> dict:
    """What the page needs, from RUN/samples/: classes, epochs and, per sample, its image, its true
    mask and one predicted mask and one row of per-class IoU per epoch."""
    log = SampleLog(run_path)
    if not log.exists():
        raise NotFound(f"{log.path} is missing: this run has no per-epoch samples (it was trained before "
                                "seglab logged them). Train it again to get the viewer.")
    index = log.read()
    classes = ClassSpec.from_json(index["classes"])
    epochs = [e["epoch"] for e in index["epochs"]]
    samples = []
    for i, name in enumerate(index["names"]):
        samples.append({
            "name": name,
            "image": _data_uri(log.image(i).read_bytes(), "image/jpeg"),
            "truth": _index_png(log.truth(i)),
            "predictions": [_index_png(log.prediction(e, i)) for e in epochs],
            "iou": [e["iou"][i] for e in index["epochs"]],
        })
    size = np.asarray(Image.open(log.truth(0))).shape if index["names"] else (0, 0)
    return {"run": Path(run_path).name, "size": list(size), "epochs": epochs,
            "classes": [{"name": n, "color": list(c)} for n, c in zip(classes.names, classes.colors)],
            "samples": samples}


def escape_json(text: str) -> str:
    """JSON text safe inside a <script> element: <, > and & as \\u escapes (the same data to a
    JSON parser), so no class name can end the element or open a comment in it."""
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def viewer_fragment(run_path) -> str:
    """The viewer as an HTML fragment (style, container, data and script) for any page."""
    data = escape_json(json.dumps(viewer_data(run_path), separators=(",", ":")))
    files = resources.files("seglab.report")
    return (f"<style>{files.joinpath('viewer.css').read_text()}</style>"
            '<div id="seglab-viewer"></div>'
            f'<script type="application/json" id="seglab-viewer-data">{data}</script>'
            f"<script>{files.joinpath('viewer.js').read_text()}</script>")


def write_viewer(run_path) -> Path:
    """Write RUN/viewer.html: the viewer alone, a page that works offline, opened from disk."""
    run = Run(run_path)
    title = f"seglab viewer: {html.escape(run.path.name)}"
    page = (f"<!doctype html><html><head><meta charset=utf-8><title>{title}</title></head>"
            f"<body style='margin: 1em 2em'><h2 style='font-family: system-ui, sans-serif'>{title}</h2>"
            f"{viewer_fragment(run.path)}</body></html>\n")
    path = run.path / "viewer.html"
    write_text(path, page)
    return path
