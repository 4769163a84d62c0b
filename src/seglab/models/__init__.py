"""The model zoo: `build_model(name, num_logits, input_size, **options)`.

Importing this package registers seglab's layers, losses and metrics with Keras, so
`keras.models.load_model` reads a saved seglab model, compiled or not, in safe mode without
`custom_objects`.
"""
import seglab.losses  # noqa: F401  (registers the losses)
import seglab.metrics  # noqa: F401  (registers the metrics)
from seglab.models.backbones import CaffePreprocess
from seglab.models.registry import MODELS, SPECS, build_model, model_options, model_spec

__all__ = ["CaffePreprocess", "MODELS", "SPECS", "all_layers", "build_model", "model_options", "model_spec"]


def all_layers(model):
    """Every layer of `model`, those of nested models (an encoder) too."""
    import keras

    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from all_layers(layer)
