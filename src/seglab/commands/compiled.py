"""The compiled model of a recipe: built under its precision, with its optimizer, loss and metrics.
Training builds it, and the planner builds the same one to time a step."""
from __future__ import annotations

import keras

from seglab.core.precision import precision
from seglab.data.bands import Stretch
from seglab.data.check import band_statistics
from seglab.engines.distribute import Cluster, synchronize_batch_norm
from seglab.models import build_model, model_spec
from seglab.models.inputs import ImageInput
from seglab.runs.config import TrainConfig, binary_head
from seglab.scoring.losses import make_loss
from seglab.scoring.metrics import segmentation_metrics


def optimizer(config: TrainConfig, steps_per_epoch: int):
    rate = config.recipe.learning_rate
    if config.recipe.schedule == "cosine":
        rate = keras.optimizers.schedules.CosineDecay(rate, decay_steps=config.recipe.epochs * steps_per_epoch, alpha=0.01)
    chosen = {"adam": keras.optimizers.Adam, "rmsprop": keras.optimizers.RMSprop}[config.recipe.optimizer](rate)
    if config.setup.precision == "mixed_float16":
        # Keras would wrap it in compile too, but then last.keras records the bare optimizer, whose
        # variables do not match the saved ones: a resumed run restarted its optimizer at step 0.
        chosen = keras.optimizers.LossScaleOptimizer(chosen)
    return chosen


def compiled_model(config: TrainConfig, num_classes: int, steps_per_epoch: int, cluster: Cluster, image: ImageInput):
    num_logits = 1 if binary_head(config) else num_classes
    weights = None if config.recipe.class_weights is None else list(config.recipe.class_weights)
    with precision(config.setup.precision), cluster.scope():
        recipe = config.recipe
        encoder = model_spec(recipe.model).encoder_options(recipe.weights, recipe.fine_tune)
        model = build_model(recipe.model, num_logits, recipe.size, image, **encoder, **recipe.model_options)
        synchronize_batch_norm(model, cluster)
        model.compile(optimizer=optimizer(config, steps_per_epoch), loss=make_loss(config.recipe.loss, num_logits, weights),
                      metrics=segmentation_metrics(num_classes))
    return model


def image_input(source, reports) -> ImageInput:
    """What the model takes: the source's bands, and for images that are not 8-bit the per-band
    stretch of the training split's 1st to 99th percentiles (`seglab.data.bands.Stretch`), from
    the dataset doctor's `reports`."""
    bands = source.bands
    if bands.dtype == "uint8":
        return ImageInput(bands.channels)
    stats = band_statistics([r for r in reports if r.pair.split == "train"], bands.names)
    return ImageInput.of(bands, Stretch.of(stats, bands.names))
