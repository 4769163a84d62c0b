"""Class pixel statistics of a dataset, and the class weights they suggest."""
from __future__ import annotations

import numpy as np


class ClassStats:
    """Accumulates, over masks of class indices, pixels per class and the labelled pixels of the
    images each class appears in (what median-frequency balancing needs)."""

    def __init__(self, num_classes: int, ignore_index: int = 255):
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.pixels = np.zeros(num_classes, np.int64)
        self.pixels_of_images_with = np.zeros(num_classes, np.int64)
        self.ignored = 0
        self.images = 0

    def update(self, labels: np.ndarray) -> None:
        counts = np.bincount(labels.ravel(), minlength=256)
        self.update_counts(counts[: self.num_classes], int(counts[self.ignore_index]))

    def update_counts(self, class_pixels: np.ndarray, ignored: int) -> None:
        class_pixels = np.asarray(class_pixels, np.int64)
        self.pixels += class_pixels
        self.pixels_of_images_with += np.where(class_pixels > 0, class_pixels.sum(), 0)
        self.ignored += ignored
        self.images += 1

    @property
    def fractions(self) -> np.ndarray:
        """float [C]: each class's share of the labelled (not ignored) pixels."""
        total = self.pixels.sum()
        return self.pixels / total if total else np.zeros(self.num_classes)

    def median_frequency_weights(self) -> np.ndarray:
        """float [C]: median(freq) / freq_c, with freq_c = pixels of c / labelled pixels of the
        images containing c (Eigen & Fergus, 2015). Classes never seen get weight 0."""
        seen = self.pixels > 0
        freq = np.zeros(self.num_classes)
        freq[seen] = self.pixels[seen] / self.pixels_of_images_with[seen]
        weights = np.zeros(self.num_classes)
        if seen.any():
            weights[seen] = np.median(freq[seen]) / freq[seen]
        return weights
