"""Loading and running a TF2 detection-zoo Mask R-CNN SavedModel.

The model takes one uint8 image [1, H, W, 3] and returns a dict with (at least) the keys in
`REQUIRED`: boxes normalised (ymin, xmin, ymax, xmax), COCO category ids, scores, box-relative
masks [1, N, m, m] and the number of detections.
"""
from __future__ import annotations

import os
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seglab.core.errors import BadArgument
from seglab.core.files import TMP_MARK

# The Mask R-CNN that the TensorFlow cookbook uses (COCO, Inception-ResNet-v2, 1024x1024).
DEFAULT_MODEL = "https://tfhub.dev/tensorflow/mask_rcnn/inception_resnet_v2_1024x1024/1"
REQUIRED = ("detection_boxes", "detection_classes", "detection_scores", "detection_masks", "num_detections")


@dataclass
class Detections:
    """One image's detections, best first: boxes [N, 4] normalised, classes [N] COCO ids,
    scores [N], box_masks [N, m, m] in 0..1."""
    boxes: np.ndarray
    classes: np.ndarray
    scores: np.ndarray
    box_masks: np.ndarray

    def keep(self, min_score: float, max_detections: int) -> "Detections":
        order = np.argsort(-self.scores, kind="stable")
        order = order[self.scores[order] >= min_score][:max_detections]
        return Detections(self.boxes[order], self.classes[order], self.scores[order], self.box_masks[order])


def _extract(archive: Path) -> Path:
    """Unpack a SavedModel archive (.tar.gz / .tgz / .tar) beside itself, once.

    Every member is checked before anything is written, and the archive is unpacked into a
    temporary folder renamed into place only when it all came out: a refused or broken archive
    leaves no folder that the next run would take for a finished one."""
    target = archive.with_name(archive.name.split(".tar")[0].removesuffix(".tgz") + ".extracted")
    if not target.exists():
        tmp = target.with_name(f".{target.name}{TMP_MARK}-{os.getpid()}")
        try:
            with tarfile.open(archive) as tar:
                members = tar.getmembers()
                for member in members:  # the same rule extractall applies, on every member first
                    tarfile.data_filter(member, str(tmp))
                tmp.mkdir()
                tar.extractall(tmp, members=members, filter="data")
            os.replace(tmp, target)
        except tarfile.FilterError as e:
            raise BadArgument(f"{archive}: refused, a member would be written outside the model's folder or is not a "
                             f"plain file ({e}). Nothing was extracted; unpack it yourself if you trust it.") from None
        except (tarfile.TarError, EOFError, OSError) as e:
            raise BadArgument(f"{archive}: not a readable tar archive ({e}). Give a TF2 SavedModel folder, or a "
                             ".tar.gz / .tar of one (as the TF2 detection zoo ships them).") from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    found = sorted(target.glob("**/saved_model.pb"), key=lambda p: len(p.parts))
    if not found:
        raise BadArgument(f"{archive}: the archive holds no saved_model.pb; expected a TF2 SavedModel folder inside.")
    return found[0].parent


def resolve_model(spec: str | None) -> Path:
    """A SavedModel folder for `spec`: a folder, an archive, or a TF Hub handle / URL (downloaded
    and cached by tensorflow_hub on first use; TFHUB_CACHE_DIR sets where)."""
    spec = spec or DEFAULT_MODEL
    if spec.startswith(("http://", "https://")) or not Path(spec).exists():
        if not spec.startswith(("http://", "https://")):
            raise BadArgument(f"{spec}: no such SavedModel folder or archive. Give a folder with saved_model.pb, a "
                             f".tar.gz of one, or a TF Hub handle such as {DEFAULT_MODEL}.")
        try:
            import tensorflow_hub as hub
        except ImportError:
            raise BadArgument(f"Downloading {spec} needs tensorflow-hub: pip install 'seglab[instances]'. "
                             "Or pass --model with a local SavedModel folder or archive.") from None
        return Path(hub.resolve(spec))
    path = Path(spec)
    if path.is_file():
        return _extract(path)
    if not (path / "saved_model.pb").is_file():
        raise BadArgument(f"{path}: no saved_model.pb in this folder; give a TF2 SavedModel folder or archive.")
    return path


class Detector:
    """A loaded Mask R-CNN: `detector(image uint8 [H, W, 3]) -> Detections`."""

    def __init__(self, spec: str | None = None):
        import tensorflow as tf

        self.tf = tf
        self.path = resolve_model(spec)
        try:
            loaded = tf.saved_model.load(str(self.path))
        except (OSError, ValueError, tf.errors.OpError) as e:  # a saved_model.pb that is not one, missing variables
            first = str(getattr(e, "message", e)).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise BadArgument(f"{self.path / 'saved_model.pb'}: not a loadable TF2 SavedModel ({first}). Give the folder "
                             "(or .tar.gz) of a TF2 detection-zoo Mask R-CNN as it was downloaded.") from None
        self._loaded = loaded  # keeps the variables alive
        self._call = loaded if callable(loaded) else loaded.signatures["serving_default"]

    def __call__(self, image: np.ndarray) -> Detections:
        outputs = self._call(self.tf.constant(np.asarray(image, np.uint8)[None]))
        missing = [k for k in REQUIRED if k not in outputs]
        if missing:
            raise BadArgument(f"{self.path}: the model's outputs lack {', '.join(missing)} (it has "
                             f"{', '.join(sorted(outputs)) or 'none'}). seglab needs a TF2 detection-zoo Mask R-CNN.")
        n = int(np.asarray(outputs["num_detections"]).reshape(-1)[0])
        get = lambda key: np.asarray(outputs[key])[0][:n]  # noqa: E731
        return Detections(get("detection_boxes").astype(np.float64), get("detection_classes").astype(np.int64),
                          get("detection_scores").astype(np.float64), get("detection_masks").astype(np.float32))
