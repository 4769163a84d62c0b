"""The tf.data pipeline: shapes, dtypes, masks that keep their values, aligned augmentation."""
import numpy as np
import pytest
import tensorflow as tf
from conftest import blocks_mask, write_folder
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from seglab.data import open_source
from seglab.data.augment import Augment
from seglab.data.pipeline import (
    ROUTE_PIL,
    Size,
    decode_route,
    make_dataset,
    resize_pair,
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("ds")
    rng = np.random.default_rng(0)
    masks = {}
    for i in range(12):
        m = np.zeros((40, 60), np.uint8)
        m[5 + i:25 + i, 10:30] = 1 + i % 2
        m[0, :] = 255  # an ignored row
        masks[f"s{i:02d}"] = m
    return write_folder(root, masks, classes=["bg", "a", "b"], image_ext=".jpg", rng=rng)


def test_batches_have_the_contracted_types(folder):
    ds = make_dataset(open_source(folder), "train", size=(32, 48), batch_size=4)
    images, masks = next(iter(ds))
    assert images.dtype == tf.float32 and images.shape[1:] == (32, 48, 3)
    assert masks.dtype == tf.uint8 and masks.shape[1:] == (32, 48)
    assert 0 <= float(tf.reduce_min(images)) and float(tf.reduce_max(images)) <= 255 and float(tf.reduce_max(images)) > 1
    assert set(np.unique(masks)) <= {0, 1, 2, 255}


def test_every_sample_once_per_epoch(folder):
    src = open_source(folder)
    ds = make_dataset(src, "train", size=16, batch_size=3)
    assert sum(int(m.shape[0]) for _, m in ds) == len(src.split("train"))


def test_resized_mask_holds_no_new_values():
    mask = np.array(blocks_mask(37, 53, 3)) * 2 + 1  # values 1, 3, 5
    _, out = resize_pair(tf.zeros((37, 53, 3)), tf.constant(mask), 64, 20)
    assert set(np.unique(out)) <= {1, 3, 5}


def test_keep_aspect_pads_mask_with_ignore(folder):
    ds = make_dataset(open_source(folder), "train", size=64, batch_size=12, keep_aspect=True, shuffle=False)
    _, masks = next(iter(ds))
    # 60x40 fit into 64x64 -> 64x43, padded 10 rows above and 11 below with ignore
    assert (masks[:, :10] == 255).numpy().all() and (masks[:, -11:] == 255).numpy().all()
    assert (masks[:, 12:50] != 255).numpy().any()


def test_pillow_route_matches_tensorflow_route(tmp_path):
    """A palette mask (Pillow route) decodes to the same batch as its index twin (TensorFlow route)."""
    mask = blocks_mask(24, 36, 3)
    index = write_folder(tmp_path / "index", {"a": mask}, classes=["x", "y", "z"])
    palette = write_folder(tmp_path / "palette", {"a": mask}, classes=["x", "y", "z"])
    im = Image.fromarray(mask, mode="P")
    im.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * 759)
    im.save(palette / "masks" / "a.png")
    src_i, src_p = open_source(index, val_fraction=0), open_source(palette, val_fraction=0)
    assert decode_route(src_p.pairs[0], src_p, Size.of(16)) == ROUTE_PIL != decode_route(src_i.pairs[0], src_i, Size.of(16))
    a = next(iter(make_dataset(src_i, "train", size=16, batch_size=1)))
    b = next(iter(make_dataset(src_p, "train", size=16, batch_size=1)))
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_allclose(a[0], b[0], atol=1)


def test_cache_and_repeat(folder):
    ds = make_dataset(open_source(folder), "train", size=16, batch_size=2, cache=True, repeat=True, augment=True)
    assert len(list(ds.take(20))) == 20


def test_datasets_run_without_the_autotune_model_thread(folder):
    # The model thread makes destroying an iterator that Keras consumed wait up to 60 s
    # (see pipeline._without_autotune_model); parallel maps still use every core.
    for split, options in (("train", dict(cache=True, repeat=True, augment=True)), ("val", {})):
        ds = make_dataset(open_source(folder), split, size=16, batch_size=2, **options)
        assert ds.options().autotune.enabled is False
        assert len(list(ds.take(3))) >= 1


def pattern(h, w):
    """An asymmetric pattern whose image encodes its mask: class = red channel // 80."""
    yy, xx = np.mgrid[0:h, 0:w]
    mask = ((xx * 3 // w + (yy * 2 // h) * 2) % 3).astype(np.uint8)
    mask[: h // 4, : w // 5] = 2  # a corner block breaks every symmetry
    image = np.stack([mask * 80 + 40, np.full_like(mask, 128), np.full_like(mask, 128)], -1).astype(np.float32)
    return image, mask


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_augmentation_keeps_image_and_mask_aligned(seed):
    image, mask = pattern(48, 64)
    aug = Augment(brightness=0.0, contrast=0.0, zoom=(0.6, 1.8), vflip=0.5)
    out_image, out_mask = aug(tf.constant(image[None]), tf.constant(mask[None]), tf.constant([seed, 7], tf.int64))
    out_image, out_mask = out_image.numpy()[0], out_mask.numpy()[0]
    assert out_mask.shape == (48, 64) and out_image.shape == (48, 64, 3)
    labelled = out_mask != 255
    decoded = np.clip(np.round((out_image[..., 0] - 40) / 80), 0, 2).astype(np.uint8)
    # Bilinear image resizing blurs class borders by a pixel; everything else must agree exactly.
    agree = (decoded == out_mask)[labelled].mean()
    assert agree > 0.93, agree
    assert set(np.unique(out_mask)) <= {0, 1, 2, 255}
    assert (out_image[~labelled] == 0).all()  # padding: black image, ignored mask


def test_each_augmentation_draws_from_its_own_stream():
    """Turning one operation on or off (or adding one) leaves the others' draws as they were."""
    seed = tf.constant([3, 11], tf.int64)
    full = Augment(vflip=0.5).draws(8, seed)
    fewer = Augment(flip=0.0, brightness=0.0).draws(8, seed)
    assert set(full) == {"flip", "vflip", "zoom", "offset", "brightness", "contrast"}
    assert set(fewer) == {"zoom", "offset", "contrast"}
    for name in set(full) & set(fewer):
        np.testing.assert_array_equal(full[name].numpy(), fewer[name].numpy())
    assert not Augment.off().enabled and Augment().enabled


def test_augmentation_options_are_checked_where_they_are_declared():
    from seglab.core.schema import from_plain

    assert from_plain(Augment, {"zoom": [1, 2], "flip": 0}) == Augment(zoom=(1.0, 2.0), flip=0.0)
    with pytest.raises(ValueError, match="flip must be a number from 0 to 1"):
        from_plain(Augment, {"flip": 2})
    with pytest.raises(ValueError, match="zoom must be two numbers"):
        from_plain(Augment, {"zoom": [2, 1]})


def test_augmentation_draws_differ_per_sample_and_repeat_per_seed(folder):
    src = open_source(folder)
    first = [m.numpy() for _, m in make_dataset(src, "train", size=32, batch_size=4, augment=True, seed=1)]
    again = [m.numpy() for _, m in make_dataset(src, "train", size=32, batch_size=4, augment=True, seed=1)]
    other = [m.numpy() for _, m in make_dataset(src, "train", size=32, batch_size=4, augment=True, seed=2)]
    assert all((a == b).all() for a, b in zip(first, again))
    assert not all(a.shape == b.shape and (a == b).all() for a, b in zip(first, other))


def test_bad_options_are_clear(folder):
    src = open_source(folder)
    with pytest.raises(ValueError, match="interpolation"):
        make_dataset(src, size=16, interpolation="cubic")
    with pytest.raises(ValueError, match="no pairs in split 'test'. Splits here: train, val"):
        make_dataset(src, "test", size=16)


@pytest.mark.parametrize("values", [
    {1: 0, 2: 1, 3: 2},  # Oxford trimap: contiguous, offset 1
    {**{i: i for i in range(11)}, 11: 255},  # CamVid: void ignored
    {1: 1, 2: 0, 3: 1},  # Oxford binary view: needs the table
    {0: 0, 255: 1},  # 0/255 binary
])
def test_tensorflow_value_map_matches_numpy(values):
    from seglab.data.masks import ValueMap
    from seglab.data.pipeline import value_map_op
    raw = np.arange(256, dtype=np.uint8).reshape(16, 16)
    enc = ValueMap(values)
    np.testing.assert_array_equal(value_map_op(enc)(tf.constant(raw)).numpy(), enc.decode(raw).labels)


def test_crops_come_at_the_images_own_resolution(tmp_path):
    """Random training crops differ per epoch and are cut from the full-size pair; validation
    takes the centre; a smaller image is padded (its mask with ignore); --scale resizes first."""
    rng = np.random.default_rng(0)
    masks = {f"s{i}": rng.integers(0, 3, (40, 60), dtype=np.uint8) for i in range(4)} | {"tiny": np.ones((10, 12), np.uint8)}
    root = write_folder(tmp_path / "ds", masks, classes=["bg", "a", "b"])
    src = open_source(root, val_fraction=0.4)
    epochs = list(make_dataset(src, "train", size=24, crop=24, batch_size=8, repeat=True, seed=3).take(2))
    for images, truths in epochs:
        assert images.shape[1:] == (24, 24, 3) and truths.shape[1:] == (24, 24)
    assert not np.array_equal(epochs[0][1].numpy(), epochs[1][1].numpy())  # new crops every epoch
    for image, truth in zip(*epochs[0]):  # each crop is a window of one pair, image and mask alike
        assert any(_window_of(np.asarray(Image.open(p.mask)), truth.numpy(), np.asarray(Image.open(p.image)), image.numpy())
                   for p in src.split("train"))
    val = src.split("val")
    images, truths = next(iter(make_dataset(src, "val", size=24, crop=24, batch_size=8)))
    for pair, image, truth in zip(val, images.numpy(), truths.numpy()):
        full = np.asarray(Image.open(pair.mask))
        if full.shape == (40, 60):
            np.testing.assert_array_equal(truth, full[8:32, 18:42])
        else:  # 10 x 12, centred in ignore
            assert (truth == 255).sum() == 24 * 24 - 120 and (truth[7:17, 6:18] == 1).all()
    halved = next(iter(make_dataset(src, "val", size=16, crop=16, scale=0.5, batch_size=8)))[1].numpy()
    assert halved.shape[1:] == (16, 16)


def _window_of(mask, crop_mask, image, crop_image) -> bool:
    h, w = crop_mask.shape
    for y in range(mask.shape[0] - h + 1):
        for x in range(mask.shape[1] - w + 1):
            if np.array_equal(mask[y:y + h, x:x + w], crop_mask):
                return np.array_equal(image[y:y + h, x:x + w].astype(np.float32), crop_image)
    return False
