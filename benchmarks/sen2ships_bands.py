"""Sentinel-2 ships: the five bands against RGB only, with the same recipe and seeds.

The split (documented in docs/benchmarks.md): algiers, cartagena and gdynia train; genoa and hedland
validate. santos is left out: it has no B02, which both band sets need. The script builds a
`folder` dataset of it: the training scenes cut into CROP x CROP tiles of their five bands, the
validation scenes linked whole.

Each run trains `--model` on those tiles (`--crop CROP`: native resolution), then `seglab evaluate
--tile CROP` scores the whole validation scenes by sliding tiles. Prints a JSON line per run (vessel
IoU and F1, which is the vessel class's Dice, with the machine) and a summary line per band set:
the mean and spread over seeds.

  python benchmarks/sen2ships_bands.py --seeds 0 1 2 --epochs 60
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from json_line import emit

SHARED = Path(__file__).resolve().parents[2] / "shared"
SPLIT = {"train": ("algiers", "cartagena", "gdynia"), "val": ("genoa", "hedland")}
BAND_SETS = {"rgb": "B04,B03,B02", "all": "B02,B03,B04,B08,B11"}


def split_folder(root: Path, data: Path, tile: int) -> Path:
    """The split as a `folder` dataset: the training scenes cut into tile x tile GeoTIFFs of their
    five bands (so an epoch is many steps, not one per scene), the validation scenes whole (their
    band folders, linked)."""
    import numpy as np
    import tifffile
    from PIL import Image

    from seglab.data.rasters import read_raster

    for split in SPLIT:
        (root / "images" / split).mkdir(parents=True)
        (root / "masks" / split).mkdir(parents=True)
    for port in SPLIT["val"]:
        (root / "images" / "val" / port).symlink_to(data / "images" / port)
        (root / "masks" / "val" / f"{port}.png").symlink_to(data / "masks" / f"{port}.png")
    names = BAND_SETS["all"].split(",")
    items = "".join(f'<Item name="DESCRIPTION" sample="{i}" role="description">{n}</Item>' for i, n in enumerate(names))
    for port in SPLIT["train"]:
        pixels = read_raster(data / "images" / port).select(names, port).pixels
        mask = np.asarray(Image.open(data / "masks" / f"{port}.png").convert("RGB"))
        height, width = mask.shape[:2]
        for y in range(0, height - tile + 1, tile):
            for x in range(0, width - tile + 1, tile):
                stem = f"{port}_{y:04d}_{x:04d}"
                tifffile.imwrite(root / "images" / "train" / f"{stem}.tif", pixels[y:y + tile, x:x + tile],
                                 photometric="minisblack", planarconfig="contig",
                                 extratags=[(42112, "s", 0, f"<GDALMetadata>{items}</GDALMetadata>", True)])
                Image.fromarray(mask[y:y + tile, x:x + tile]).save(root / "masks" / "train" / f"{stem}.png")
    (root / "labelmap.txt").symlink_to(data / "labelmap.txt")
    return root


def seglab(*args) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "seglab", *map(str, args)], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def one(data: Path, out: Path, bands: str, seed: int, args) -> dict:
    train_s = seglab("train", data, "--out", out, "--bands", bands, "--model", args.model, *args.model_options,
                     "--crop", args.crop, "--batch-size", args.batch, "--epochs", args.epochs, "--seed", seed,
                     "--precision", args.precision, "--learning-rate", args.lr, "--augment-vflip", 0.5,
                     "--class-weights", args.class_weights)
    seglab("evaluate", out, "--tile", args.crop)
    metrics = json.loads((out / f"metrics_val_full_tile{args.crop}.json").read_text())
    return {"bands": bands, "seed": seed, "model": args.model, "crop": args.crop, "epochs": args.epochs,
            "precision": args.precision, "vessel_iou": metrics["iou"]["vessel"], "vessel_f1": metrics["dice"]["vessel"],
            "miou": metrics["miou"], "train_s": round(train_s)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=SHARED / "data" / "sen2ships")
    parser.add_argument("--model", default="unet")
    parser.add_argument("--model-options", nargs="*", default=["--option", "filters=16,32,64,128"])
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--precision", default="float32")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--sets", nargs="+", default=list(BAND_SETS), choices=list(BAND_SETS))
    parser.add_argument("--class-weights", default="auto", help="seglab train --class-weights (the same for every run)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = split_folder(Path(tmp) / "data", args.data.resolve(), args.crop)
        results = {name: [] for name in args.sets}
        for seed in args.seeds:  # alternated: both band sets see the same machine state
            for name in args.sets:
                bands = BAND_SETS[name]
                result = one(data, Path(tmp) / f"{name}-{seed}", bands, seed, args)
                results[name].append(result)
                emit({"set": name, **result})
        for name, runs in results.items():
            summary = {"summary": name, "bands": BAND_SETS[name], "seeds": args.seeds}
            for key in ("vessel_iou", "vessel_f1"):
                values = [r[key] or 0.0 for r in runs]
                summary[key] = round(statistics.mean(values), 4)
                summary[f"{key}_spread"] = [round(min(values), 4), round(max(values), 4)]
            emit(summary, args.precision)


if __name__ == "__main__":
    main()
