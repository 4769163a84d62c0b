"""Each dataset layout is found, split and classed correctly, on small files written here."""
import json

import numpy as np
import pytest
from conftest import blocks_mask, noise_image, write_folder
from PIL import Image

from seglab.data import detect_format, open_source
from seglab.data.sources import hash_split


def write_oxford(root, stems, listed=True, rng=np.random.default_rng(0)):
    (root / "images").mkdir(parents=True)
    (root / "annotations" / "trimaps").mkdir(parents=True)
    for s in stems:
        Image.fromarray(noise_image(rng, 20, 30)).save(root / "images" / f"{s}.jpg")
        Image.fromarray(np.full((20, 30), 2, np.uint8)).save(root / "annotations" / "trimaps" / f"{s}.png")
    (root / "images" / f"{stems[0]}.mat").write_bytes(b"MATLAB")
    if listed:
        (root / "annotations" / "trainval.txt").write_text("".join(f"{s} 1 1 1\n" for s in stems[:-1]))
        (root / "annotations" / "test.txt").write_text(f"{stems[-1]} 1 1 1\n")
    return root


def test_oxford_layout(tmp_path):
    root = write_oxford(tmp_path / "pets", [f"Cat_{i}" for i in range(10)])
    src = open_source(root)
    assert src.format == "oxford-pets"
    assert src.classes.names == ("pet", "background", "border")
    assert len(src.pairs) == 10 and src.splits["test"] == 1
    assert [f.name for f in src.ignored_files] == ["Cat_0.mat"]
    binary = open_source(root, view="binary")
    assert binary.classes.names == ("background", "pet")


def test_camvid_layout(tmp_path):
    for split in ("train", "val"):
        (tmp_path / split).mkdir()
        (tmp_path / f"{split}annot").mkdir()
        for i in range(3):
            Image.fromarray(noise_image(np.random.default_rng(i), 12, 16)).save(tmp_path / split / f"f{i}.jpg")
            Image.fromarray(np.full((12, 16), 11, np.uint8)).save(tmp_path / f"{split}annot" / f"f{i}.png")
    src = open_source(tmp_path)
    assert src.format == "camvid" and src.splits == {"train": 3, "val": 3}
    assert src.classes.num_classes == 11
    assert src.encoding.decode(np.array([[3, 11]], np.uint8)).labels.tolist() == [[3, 255]]
    road = open_source(tmp_path, view="road")
    assert road.encoding.decode(np.array([[3, 0, 11]], np.uint8)).labels.tolist() == [[1, 0, 255]]


def test_cityscapes_pairs_from_jpeg(tmp_path):
    """A side-by-side JPEG: the road colour survives compression as a near colour, and still reads as road."""
    (tmp_path / "train").mkdir()
    photo = noise_image(np.random.default_rng(0), 64, 64)
    mask = np.zeros((64, 64, 3), np.uint8)
    mask[32:] = (128, 64, 128)  # road in the bottom half
    mask[:32] = (70, 130, 180)  # sky on top
    Image.fromarray(np.concatenate([photo, mask], axis=1)).save(tmp_path / "train" / "1.jpg", quality=75)
    assert detect_format(tmp_path) == "cityscapes-pairs"
    src = open_source(tmp_path, view="road")
    pair = src.pairs[0]
    labels = src.encoding.decode(np.asarray(Image.open(pair.mask))[:, 64:]).labels
    assert (labels[36:60, 4:60] == 1).all() and (labels[4:28, 4:60] == 0).all()
    full = open_source(tmp_path)
    labels = full.encoding.decode(np.asarray(Image.open(pair.mask))[:, 64:]).labels
    assert (labels[4:28, 4:60] == full.classes.names.index("sky")).all()


def test_folder_index_masks_with_classes_json(tmp_path):
    write_folder(tmp_path, {f"s{i}": blocks_mask() for i in range(20)}, classes=["sky", "sea", "boat"])
    src = open_source(tmp_path)
    assert src.format == "folder" and src.classes.names == ("sky", "sea", "boat")
    assert src.encoding.kind == "index" and set(src.splits) == {"train", "val"}


def test_folder_palette_masks_take_palette_colours(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for i in range(3):
        Image.fromarray(noise_image(np.random.default_rng(i), 8, 8)).save(tmp_path / "images" / f"{i}.png")
        m = Image.fromarray(blocks_mask(8, 8, 2), mode="P")
        m.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
        m.save(tmp_path / "masks" / f"{i}.png")
    src = open_source(tmp_path)
    assert src.encoding.kind == "palette"
    assert src.classes.colors[1] == (10, 200, 30)


def test_folder_binary_0_255(tmp_path):
    write_folder(tmp_path, {f"s{i}": blocks_mask(8, 8, 2) * 255 for i in range(4)})
    src = open_source(tmp_path)
    assert src.classes.names == ("background", "foreground") and src.encoding.kind == "binary"


def test_folder_rgb_masks_with_colour_table(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    mask = np.zeros((8, 8, 3), np.uint8)
    mask[:, 4:] = (255, 0, 0)
    Image.fromarray(mask).save(tmp_path / "masks" / "a.png")
    Image.fromarray(noise_image(np.random.default_rng(0), 8, 8)).save(tmp_path / "images" / "a.jpg")
    (tmp_path / "classes.json").write_text(json.dumps({"background": [0, 0, 0], "cat": [255, 0, 0]}))
    src = open_source(tmp_path)
    assert src.encoding.kind == "colour"
    assert src.encoding.decode(mask).labels[0].tolist() == [0] * 4 + [1] * 4


def test_folder_rgb_masks_without_table_is_a_clear_error(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    Image.fromarray(noise_image(np.random.default_rng(0), 8, 8)).save(tmp_path / "masks" / "a.png")
    Image.fromarray(noise_image(np.random.default_rng(0), 8, 8)).save(tmp_path / "images" / "a.png")
    with pytest.raises(ValueError, match="colour table"):
        open_source(tmp_path)


def test_folder_class_names_inferred_when_absent(tmp_path):
    write_folder(tmp_path, {f"s{i}": blocks_mask(num_classes=4) for i in range(3)})
    src = open_source(tmp_path)
    assert src.classes.names == ("class_0", "class_1", "class_2", "class_3")


def test_split_is_deterministic_disjoint_and_stable():
    names = [f"img_{i}" for i in range(1000)]
    first = {n: hash_split(n, 0.2, seed=3) for n in names}
    assert first == {n: hash_split(n, 0.2, seed=3) for n in reversed(names)}
    assert 150 < sum(s == "val" for s in first.values()) < 250
    assert first != {n: hash_split(n, 0.2, seed=4) for n in names}


def test_synthetic_is_deterministic(tmp_path):
    from seglab.data import synthetic
    a = synthetic.write(tmp_path / "a", seed=5, count=3, size=32)
    b = synthetic.write(tmp_path / "b", seed=5, count=3, size=32)
    for sub in ("images", "masks"):
        for f in (a / sub).iterdir():
            assert f.read_bytes() == (b / sub / f.name).read_bytes()
    src = open_source(a)
    assert src.format == "synthetic" and src.classes.names == synthetic.CLASS_NAMES


def test_unknown_format_and_view_list_choices(tmp_path):
    with pytest.raises(ValueError, match="Available: camvid, cityscapes-pairs, coco, folder, oxford-pets, synthetic"):
        open_source(tmp_path, format="voc")
    with pytest.raises(ValueError, match="cannot tell the dataset format"):
        open_source(tmp_path)


def test_synthetic_shapes_always_stand_out_from_their_background():
    from seglab.data import synthetic

    rng = np.random.default_rng(0)
    for background in rng.uniform(0, 255, (300, 3)):
        for cls in (1, 2, 3):
            colour = np.array(synthetic._shape_colour(rng, cls, background))
            assert np.linalg.norm(colour - background) >= synthetic.MIN_CONTRAST - 1  # -1: rounding to ints
