"""TensorBoard: per-epoch scalars and overlay images in RUN/tensorboard/. TensorBoard has no mask
layers, so each sample is drawn as prediction | truth, blended onto the image in class colours."""
from __future__ import annotations

import numpy as np

from seglab.data.classes import ClassSpec
from seglab.data.colors import blend
from seglab.runs import Run

IMAGE_TAG = "samples/prediction_and_truth"


class TensorBoardLogger:
    def __init__(self, run: Run, classes: ClassSpec):
        import tensorflow as tf

        self.tf, self.classes = tf, classes
        self.writer = tf.summary.create_file_writer(str(run.path / "tensorboard"))

    def log_epoch(self, row: dict, samples, sampled) -> None:
        tf = self.tf
        overlays = np.stack([
            np.concatenate([blend(image, prediction, self.classes), blend(image, truth, self.classes)], axis=1)
            for image, truth, prediction in zip(samples.pictures, samples.truths, sampled.predictions)
        ])
        with self.writer.as_default(step=row["epoch"]):
            for key, value in row.items():
                if key != "epoch":
                    tf.summary.scalar(key, value)
            tf.summary.image(IMAGE_TAG, overlays, max_outputs=len(overlays),
                             description="Validation samples: prediction (left) and ground truth (right) over the image.")
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
