"""Weights & Biases: the run's config, per-epoch metrics and the validation samples as
`wandb.Image`s with "prediction" and "ground truth" mask layers (W&B's class-toggling viewer).
Works offline with WANDB_MODE=offline; the W&B files go to RUN/wandb/."""
from __future__ import annotations

import uuid

import numpy as np

from seglab.core.errors import BadArgument
from seglab.core.files import write_text
from seglab.data.classes import ClassSpec
from seglab.runs import Run
from seglab.runs.config import TrainConfig


def _wandb():
    try:
        import wandb
    except ImportError:
        raise BadArgument("--wandb needs the wandb package: pip install 'seglab[wandb]'.") from None
    return wandb


class WandbLogger:
    def __init__(self, run: Run, config: TrainConfig, classes: ClassSpec):
        self.wandb = wandb = _wandb()
        id_file = run.path / "wandb_id"  # so a resumed seglab run continues the same W&B run
        run_id = id_file.read_text().strip() if id_file.is_file() else uuid.uuid4().hex[:12]
        write_text(id_file, run_id + "\n")
        self.session = wandb.init(project=config.setup.wandb_project, name=run.path.name, id=run_id, resume="allow",
                                  dir=str(run.path), config=config.to_dict(), job_type="train")
        self.labels = {i: name for i, name in enumerate(classes.names)}
        self.labels[classes.ignore_index] = "ignore"

    def log_epoch(self, row: dict, samples, sampled) -> None:
        images = [
            self.wandb.Image(image, caption=name, masks={
                "prediction": {"mask_data": prediction.astype(np.uint8), "class_labels": self.labels},
                "ground truth": {"mask_data": truth.astype(np.uint8), "class_labels": self.labels},
            })
            for name, image, truth, prediction in zip(samples.names, samples.pictures, samples.truths, sampled.predictions)
        ]
        metrics = {key: value for key, value in row.items() if key != "epoch"}
        self.session.log({**metrics, "epoch": row["epoch"], "samples": images}, step=row["epoch"])

    def close(self) -> None:
        self.session.finish()
