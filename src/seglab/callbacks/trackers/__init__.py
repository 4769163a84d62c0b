"""Optional mirrors of a run to experiment trackers: Weights & Biases (`--wandb`) and TensorBoard
(`--tensorboard`). Each gets, after every epoch, the epoch's metrics and the validation samples
with their predicted and true masks; the run folder stays the record either way."""
from __future__ import annotations

from seglab.data.classes import ClassSpec
from seglab.runs import Run
from seglab.runs.config import TrainConfig


def make_trackers(config: TrainConfig, run: Run, classes: ClassSpec) -> list:
    """The trackers `config` asks for, started (a resumed run continues its W&B run)."""
    trackers = []
    if config.setup.wandb:
        from seglab.callbacks.trackers.wandb_logger import WandbLogger

        trackers.append(WandbLogger(run, config, classes))
    if config.setup.tensorboard:
        from seglab.callbacks.trackers.tensorboard_logger import TensorBoardLogger

        trackers.append(TensorBoardLogger(run, classes))
    return trackers
