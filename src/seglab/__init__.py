"""seglab: train, evaluate and run image-segmentation models."""
from seglab.data import ClassSpec, check, open_source
from seglab.errors import DataError, DatasetError, Problem

__version__ = "0.1.0"
__all__ = ["ClassSpec", "check", "make_dataset", "open_source", "DataError", "DatasetError", "Problem", "__version__"]


def __getattr__(name):
    if name == "make_dataset":  # imports TensorFlow; only when asked for
        from seglab.data.pipeline import make_dataset
        return make_dataset
    raise AttributeError(name)
