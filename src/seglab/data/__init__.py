"""Datasets: sources, mask decoding, validation and the tf.data pipeline."""
from seglab.data.check import CheckReport, check, validate
from seglab.data.classes import IGNORE_INDEX, ClassSpec
from seglab.data.formats import FORMATS, detect_format, open_source
from seglab.data.images import read_image
from seglab.data.masks import ColorMap, ValueMap, decode_mask
from seglab.data.sources import Pair, Source

__all__ = [
    "Augment", "CheckReport", "check", "validate", "IGNORE_INDEX", "ClassSpec", "read_image",
    "ColorMap", "ValueMap", "decode_mask", "FORMATS", "Pair", "Source", "detect_format", "open_source",
    "make_dataset",
]


def __getattr__(name):
    # The pipeline imports TensorFlow (seconds); load it only when asked for.
    if name == "make_dataset":
        from seglab.data.pipeline import make_dataset
        return make_dataset
    if name == "Augment":
        from seglab.data.augment import Augment
        return Augment
    raise AttributeError(name)
