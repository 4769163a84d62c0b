"""The model zoo: `build_model(name, num_logits, input_size, **options)`.

Importing this package registers seglab's layers with Keras; `seglab.runs.saving` registers the
losses and metrics too, so a saved seglab model loads, compiled or not, in safe mode.
"""
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
