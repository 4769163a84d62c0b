"""seglab: train, evaluate and run image-segmentation models."""
from seglab.data import ClassSpec, check, open_source
from seglab.errors import DataError, DatasetError, Problem

__version__ = "0.1.0"
__all__ = ["ClassSpec", "build_model", "check", "make_dataset", "open_source", "DataError", "DatasetError", "Problem", "__version__"]


def __getattr__(name):
    # These import TensorFlow / Keras, which takes seconds: only when asked for.
    if name == "make_dataset":
        from seglab.data.pipeline import make_dataset
        return make_dataset
    if name == "build_model":
        from seglab.models import build_model
        return build_model
    raise AttributeError(f"module 'seglab' has no attribute {name!r}")
