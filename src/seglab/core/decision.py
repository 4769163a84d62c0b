"""The label decision, seglab's one rule for turning scores into class indices:

- C > 1 channels: the argmax (the first of equal maxima);
- one channel (a binary model): foreground where the probability is above `threshold`, which on
  a logit is `logit > log(threshold / (1 - threshold))` (0 at the default 0.5).

It has three twins because it runs in three places: `decide` on NumPy arrays (predict, evaluate
and the runtimes), `decide_tensor` on Keras tensors (the metrics inside `fit`, the per-epoch
samples), and `seglab.deploy.deployable.OutputHead` inside an exported graph. tests/models/test_decision.py checks that
the three agree.
"""
from __future__ import annotations

import math

import numpy as np

OUTPUTS = ("logits", "probabilities", "labels")  # what a model (or an exported graph) returns


def logit_cut(threshold: float = 0.5) -> float:
    """The logit above which a binary model's pixel is foreground: sigmoid(x) > t <=> x > log(t / (1 - t))."""
    return math.log(threshold / (1 - threshold))


def decide(scores: np.ndarray, output: str = "logits", threshold: float = 0.5) -> np.ndarray:
    """Logits or probabilities [..., C] -> uint8 class indices [...]."""
    scores = np.asarray(scores)
    if scores.shape[-1] == 1:
        cut = threshold if output == "probabilities" else logit_cut(threshold)
        return (scores[..., 0] > cut).astype(np.uint8)
    return np.argmax(scores, axis=-1).astype(np.uint8)


def decide_tensor(logits, threshold: float = 0.5):
    """`decide` on logits as a Keras tensor: int32 class indices [...]."""
    from keras import ops  # here, so that reading a run's outputs needs no Keras

    if logits.shape[-1] == 1:
        return ops.cast(logits[..., 0] > logit_cut(threshold), "int32")
    return ops.cast(ops.argmax(logits, axis=-1), "int32")


def probabilities_of(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, or the sigmoid of one logit, in float32."""
    logits = np.asarray(logits, np.float32)
    if logits.shape[-1] == 1:
        return 1 / (1 + np.exp(-logits))
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)
