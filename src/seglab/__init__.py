"""seglab: train, evaluate and run image-segmentation models.

    import seglab
    run = seglab.train("../shared/data/oxford-pets", "runs/pets", model="mobilenet_unet")
    metrics = seglab.evaluate(run.path)
    seglab.predict(run.path, ["photo.jpg"], "predictions/")
"""
from seglab.core.errors import DataError, DatasetError, Problem, WeightsUnavailable
from seglab.data import ClassSpec, check, open_source

__version__ = "0.1.0"
__all__ = ["ClassSpec", "build_model", "check", "evaluate", "make_dataset", "open_source", "predict", "train", "tune",
           "write_report", "DataError", "DatasetError", "Problem", "WeightsUnavailable", "__version__"]

# These import TensorFlow / Keras, which takes seconds: only when asked for. The modules holding
# them are named training/evaluation/prediction so that no submodule shadows these names.
_LAZY = {
    "make_dataset": "seglab.data.pipeline",
    "build_model": "seglab.models",
    "train": "seglab.commands.training",
    "tune": "seglab.commands.tuning",
    "evaluate": "seglab.commands.evaluation",
    "predict": "seglab.commands.prediction",
    "write_report": "seglab.report.html",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'seglab' has no attribute {name!r}")
