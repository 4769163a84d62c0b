"""The training curves: one figure redrawn each epoch, its series and legend following history.csv."""
from __future__ import annotations

import numpy as np
from PIL import Image

from seglab.report.curves import Curves


def _history(epochs: int, validation: bool = True) -> list[dict]:
    rows = []
    for e in range(1, epochs + 1):
        row = {"epoch": e, "loss": 1 / e, "pixel_accuracy": 1 - 1 / (e + 1), "miou": 1 - 1 / (e + 2)}
        if validation:
            row.update(val_loss=1.2 / e, val_pixel_accuracy=1 - 1.5 / (e + 1), val_miou=1 - 1.5 / (e + 2))
        rows.append(row)
    return rows


def test_each_draw_shows_the_whole_history_and_writes_a_png(tmp_path):
    curves = Curves()
    for epochs in (1, 2, 5):
        curves.draw(_history(epochs), tmp_path / "curves.png")
        x, y = curves.lines["val_miou"].get_data()
        assert list(x) == list(range(1, epochs + 1)) and np.allclose(y, [1 - 1.5 / (e + 2) for e in range(1, epochs + 1)])
        picture = Image.open(tmp_path / "curves.png")
        assert picture.format == "PNG" and picture.size[0] > 2 * picture.size[1]
    for ax in curves.axes:  # the axes follow the data: the last epoch is inside the x range
        assert ax.get_xlim()[1] >= 5
    assert curves.named == ("train", "validation")
    assert [t.get_text() for t in curves.legend.get_texts()] == ["train", "validation"]


def test_a_series_without_values_is_not_drawn_nor_named(tmp_path):
    curves = Curves()
    curves.draw(_history(3, validation=False), tmp_path / "curves.png")
    assert not any(curves.lines[f"val_{key}"].get_visible() for key in ("loss", "pixel_accuracy", "miou"))
    assert [t.get_text() for t in curves.legend.get_texts()] == ["train"]
    # validation appearing later (a history resumed with it) is named from then on, in one legend
    curves.draw(_history(4), tmp_path / "curves.png")
    assert [t.get_text() for t in curves.legend.get_texts()] == ["train", "validation"]
    assert len(curves.figure.legends) == 1
