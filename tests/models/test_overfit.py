"""Each model family can fit a handful of synthetic images: the gradients reach every part."""
from __future__ import annotations

import keras
import numpy as np
import pytest

from seglab.data.synthetic import make_sample
from seglab.models import build_model
from seglab.scoring.losses import make_loss
from seglab.scoring.metrics import segmentation_metrics

# name: (options, learning rate, training steps); sized to pass with a margin in well under a minute
# (the steps are a cap: each test stops at the step that passes, 30 to 120 of them on 2 cores).
RECIPES = {
    "unet": ({"filters": (8, 16, 32), "batch_norm": True}, 3e-3, 200),
    "pix2pix_unet": ({"filters": 8, "max_filters": 64, "dropout": 0.0}, 4e-3, 350),
    "mobilenet_unet": ({"weights": "none", "fine_tune": "all", "alpha": 0.35, "decoder_filters": (64, 32, 32, 16)}, 3e-3, 100),
    "fcn8s": ({"weights": "none"}, 3e-4, 120),
}
IMAGES = 4  # one batch; 8 took half as long again (VGG16's fcn8s twice as long) for the same claim


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(RECIPES))
def test_each_model_overfits_four_synthetic_images(name):
    rng = np.random.default_rng(0)
    images, masks = zip(*(make_sample(rng, 64) for _ in range(IMAGES)))
    images, masks = np.stack(images).astype(np.float32), np.stack(masks)
    assert np.mean(masks == 0) > 0.8  # so "all background" scores > 0.8: the mIoU bound below rules that out

    options, learning_rate, steps = RECIPES[name]
    keras.utils.set_random_seed(0)
    model = build_model(name, 4, 64, **options)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=make_loss("ce", 4), metrics=segmentation_metrics(4))
    # At most `steps`; stopped as soon as the step's scores pass the bounds below, which is the claim.
    fitted = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: setattr(
        model, "stop_training", logs["pixel_accuracy"] >= 0.9 and logs["miou"] >= 0.6))
    history = model.fit(images, masks, batch_size=IMAGES, epochs=steps, verbose=0, callbacks=[fitted]).history
    # Training-mode scores of the last step: BatchNorm's moving averages lag far behind after so few steps.
    assert history["pixel_accuracy"][-1] >= 0.9, history["pixel_accuracy"][-10:]
    assert history["miou"][-1] >= 0.6, history["miou"][-10:]
