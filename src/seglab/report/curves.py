"""Training curves: loss, pixel accuracy and mIoU per epoch, train vs validation."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

PANELS = (("loss", "loss"), ("pixel_accuracy", "pixel accuracy"), ("miou", "mIoU (dataset-level)"))
SERIES = (("", "-", "train"), ("val_", "--", "validation"))


class Curves:
    """A run's curves figure, built once and redrawn after each epoch, in the writing thread beside
    the next epoch. Drawing is Python work that holds the interpreter lock the training loop needs
    between steps: on 2 AVX2 cores, skipping the curves made the demo's next epoch 0.16 s shorter
    (2.14 s against 2.30 s, epochs taking turns in one run). Most of a draw is laying out text, so
    the figure has one legend for its three panels, a few ticks an axis, and titles and the x label
    at fixed places: 0.11-0.13 s of CPU a draw (20 epochs) against 0.20-0.22 s with a legend and an
    x label on each panel, and the demo's next epoch 0.05-0.11 s shorter than after such a draw."""

    def __init__(self):
        # A bare Figure, not pyplot: pyplot keeps global state, and training draws from a background thread.
        # Fixed margins, not layout="constrained": the constrained solver doubles the drawing time.
        self.figure = Figure(figsize=(4 * len(PANELS), 3.4))
        self.figure.subplots_adjust(left=0.05, right=0.99, bottom=0.15, top=0.8, wspace=0.2)
        self.axes = self.figure.subplots(1, len(PANELS))
        self.lines = {}
        for ax, (key, label) in zip(self.axes, PANELS):
            for (prefix, style, name), color in zip(SERIES, ("C0", "C1")):
                (self.lines[prefix + key],) = ax.plot([], [], style, color=color, marker="o", markersize=3, label=name)
            ax.set_title(label, y=1.0)  # placed, not fitted above the tick labels at each draw
            ax.grid(alpha=0.3)
            ax.xaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))
            ax.yaxis.set_major_locator(MaxNLocator(nbins=5, steps=[1, 2, 2.5, 5, 10]))
        self.figure.supxlabel("epoch", y=0.02)  # one label for the three panels, not one placed by each axis
        self.legend = None
        self.named: tuple[str, ...] = ()  # the series the legend names

    def draw(self, history: list[dict], path: Path) -> None:
        """Draw `history` (history.csv's rows) to the PNG file `path`; a series with no value is left out."""
        epochs = [row["epoch"] for row in history]
        shown = {}  # series name -> a drawn line of it, for the legend
        for ax, (key, _) in zip(self.axes, PANELS):
            for prefix, _, name in SERIES:
                line = self.lines[prefix + key]
                values = np.array([row.get(prefix + key) for row in history], dtype=float)  # None: NaN, not drawn
                line.set_data(epochs, values)
                line.set_visible(bool(np.isfinite(values).any()))
                if line.get_visible():
                    shown.setdefault(name, line)
            ax.relim(visible_only=True)
            ax.autoscale_view()
        named = tuple(name for _, _, name in SERIES if name in shown)
        if named != self.named:  # the legend is made again only when the series shown change
            if self.legend is not None:
                self.legend.remove()
            self.legend = self.figure.legend(handles=[shown[n] for n in named], loc="upper right", ncols=len(named),
                                             frameon=False) if named else None
            self.named = named
        self.figure.savefig(path, dpi=90)
