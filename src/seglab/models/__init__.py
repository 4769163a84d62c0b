"""The model zoo: `build_model(name, num_logits, input_size, **options)`.

Importing this package registers seglab's layers, losses and metrics with Keras (the registry
imports every module here to collect each family's SPEC), so `keras.models.load_model` reads a
saved seglab model, compiled or not, in safe mode without `custom_objects`.
"""
import seglab.scoring.losses  # noqa: F401  (registers the losses)
import seglab.scoring.metrics  # noqa: F401  (registers the metrics)


def all_layers(model):
    """Every layer of `model`, those of nested models (an encoder) too."""
    import keras

    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from all_layers(layer)


# After all_layers: the registry imports every module here, and some use it.
from seglab.models.backbones import CaffePreprocess  # noqa: E402
from seglab.models.registry import (  # noqa: E402
    MODELS,
    SPECS,
    build_model,
    check_encoder,
    model_options,
    model_spec,
)

__all__ = ["CaffePreprocess", "MODELS", "SPECS", "all_layers", "build_model", "check_encoder", "model_options", "model_spec"]
