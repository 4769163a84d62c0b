"""What a model takes: `ImageInput`, its channels and, for images that are not 8-bit, the per-band
stretch that is its first layer (`BandStretch`), so a saved or exported model is complete.

Every family's body was built for raw 0..255 RGB and carries its own scaling after that (to 0..1,
-1..1, ImageNet's means). A band of 16-bit or float values is first brought onto that 0..255 scale
by the stretch learnt from the training split (`seglab.data.bands.Stretch`); 8-bit images need
none and get none, so an 8-bit RGB model is the layers it always was.
"""
from __future__ import annotations

from dataclasses import dataclass

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="seglab")
class BandStretch(layers.Layer):
    """[B, H, W, C] raw band values -> (x - low) * 255 / (high - low) per band, unclipped. Its
    constants are part of the computation (not weights), so an exported graph holds them."""

    def __init__(self, low, high, **kwargs):
        super().__init__(**kwargs)
        self.low, self.high = [float(v) for v in low], [float(v) for v in high]

    def call(self, inputs):
        low = ops.convert_to_tensor(self.low, dtype=inputs.dtype)
        gain = ops.convert_to_tensor([255.0 / (h - lo) for lo, h in zip(self.low, self.high)], dtype=inputs.dtype)
        return (inputs - low) * gain

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "low": self.low, "high": self.high}


@dataclass(frozen=True)
class ImageInput:
    """`channels` bands in, stretched by `low`/`high` per band when given (see BandStretch)."""

    channels: int = 3
    low: tuple[float, ...] | None = None
    high: tuple[float, ...] | None = None

    @classmethod
    def of(cls, bands, stretch=None) -> "ImageInput":
        """From the `seglab.data.bands.Bands` a model takes and their `Stretch` (None for 8-bit)."""
        if stretch is None:
            return cls(bands.channels)
        return cls(bands.channels, tuple(stretch.low), tuple(stretch.high))

    @classmethod
    def of_model(cls, model: keras.Model) -> "ImageInput":
        """What a built model takes: its channels and its stretch layer's constants."""
        stretch = next((layer for layer in model.layers if isinstance(layer, BandStretch)), None)
        if stretch is None:
            return cls(model.input_shape[-1])
        return cls(model.input_shape[-1], tuple(stretch.low), tuple(stretch.high))

    @property
    def span(self) -> tuple[float, ...] | None:
        """Each band's stretched span (high - low); None without a stretch."""
        return None if self.low is None else tuple(h - lo for lo, h in zip(self.low, self.high))

    def tensors(self, input_size) -> tuple:
        """(the model's input, the 0..255-scaled tensor its body starts from)."""
        inputs = keras.Input((*input_size, self.channels), name="image")
        if self.low is None:
            return inputs, inputs
        return inputs, BandStretch(self.low, self.high, name="band_stretch")(inputs)


RGB_INPUT = ImageInput()
