"""`seglab predict --engine ray`: batch prediction on Ray Data, on this machine or a Ray cluster.

The driver (the `seglab predict` process) lists the images and cuts them into the chunks the
local engine would run: `--batch-size` images per model call, or one image with `--tile`. Ray
Data hands the chunks to a pool of actors (`map_batches`), each of which loads the model once,
then reads, predicts and encodes its chunks with the local engine's own functions, and sends
back PNG bytes and records. The driver writes them, so masks, overlays and predictions.json are
the same files the local engine writes, and the output folder need only be on the driver's
machine. The actors read the images and the run (or export) folder by path: on a cluster those
must lie on storage every node sees, with seglab installed on every node.
"""
from __future__ import annotations

import contextlib
import functools
import importlib.util
import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from seglab.core.errors import BadArgument
from seglab.core.progress import progress

MISSING = "--engine ray needs Ray Data: pip install 'seglab[ray]'."


@dataclass(frozen=True)
class RayOptions:
    """Where the actors run and how many: `address` of a running cluster ('ray://host:10001' or
    'host:6379'; None starts Ray on this machine only), `actors` in the pool, `cpus` and `gpus`
    each actor reserves (cpus None: this machine's cores shared out among the actors)."""

    address: str | None = None
    actors: int = 1
    cpus: float | None = None
    gpus: float = 0

    def check(self) -> None:
        if importlib.util.find_spec("ray") is None or importlib.util.find_spec("ray.data") is None:
            raise BadArgument(MISSING)
        if self.actors < 1:
            raise BadArgument(f"--actors must be at least 1; got {self.actors}.")
        if (self.cpus is not None and self.cpus <= 0) or self.gpus < 0:
            raise BadArgument(f"--cpus-per-actor must be above 0 and --gpus-per-actor at least 0; got {self.cpus} and {self.gpus}.")
        if self.address not in (None, "auto", "local"):
            _check_reachable(self.address)


CONNECT_SECONDS = 10  # a head node answers at once; Ray's own retries on a wrong address last minutes


def _check_reachable(address: str) -> None:
    """Refuse in one line, within CONNECT_SECONDS, an --address nothing answers at (Ray would retry
    for minutes, printing only its own lines)."""
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise BadArgument(f"--address {address}: give host:port (the head node's GCS, e.g. 10.0.0.2:6379) or "
                          "ray://host:port (Ray Client, e.g. ray://10.0.0.2:10001).")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_SECONDS).close()
    except OSError as e:
        why = "no answer" if isinstance(e, TimeoutError) else (e.strerror or str(e))
        raise BadArgument(f"--address {address}: cannot reach the Ray cluster ({why}); check the address (the head node's "
                          "`ray start` prints it) and that this machine can reach it.") from None


class ChunkPredictor:
    """A Ray actor: the model loaded once (`job` says what to load and how to predict), then
    chunks of (path, output stem) in, for each image either its encoded mask and overlay with its
    record, or why it failed."""

    def __init__(self, job: dict):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        if os.path.isdir(job["cwd"]):  # relative paths mean what they meant to the driver
            os.chdir(job["cwd"])
        from seglab.inference.runtimes import cores, open_predictor
        from seglab.inference.tiling import TTA, Inference

        _share_tensorflow_threads(cores())  # the actor's share of the CPUs, not every core of the node
        model = open_predictor(job["run"], job["runtime"])
        tta = TTA.parse(job["tta"]) if isinstance(job["tta"], str) or job["tta"] is None else job["tta"]
        self.inference = Inference(model, job["tile"], job["overlap"], tta, job["batch_size"], model.scale)
        self.threshold, self.shown = job["threshold"], job["shown"]
        self.pool = ThreadPoolExecutor()

    def __call__(self, batch: dict) -> dict:
        import numpy as np

        rows = [row for paths, stems in zip(batch["paths"], batch["stems"])
                for row in self._chunk([Path(p) for p in paths], list(stems))]
        return {name: np.array(column, dtype=object) for name, column in zip(COLUMNS, zip(*rows))}

    def _chunk(self, paths: list[Path], stems: list[str]) -> list[tuple]:
        """One chunk's rows (COLUMNS): its failures, then its predictions; the seconds its stages
        took on its first row."""
        from seglab.core.errors import DataError
        from seglab.core.progress import Stopwatch
        from seglab.inference.chunks import (
            chunk_labels,
            encode,
            failure,
            large_images_allowed,
            read_input,
        )

        clock = Stopwatch()
        with large_images_allowed(bool(self.inference.tile)), clock("read"):
            images = list(self.pool.map(lambda path: read_input(path, self.inference.predictor.bands), paths))
        rows = [(str(p), json.dumps({"failed": failure(p, image.problem.message)}), *(b"" for _ in FILES))
                for p, image in zip(paths, images) if isinstance(image, DataError)]
        good = [(p, s, image) for p, s, image in zip(paths, stems, images) if not isinstance(image, DataError)]
        if good:
            labels = chunk_labels(self.inference, [image.pixels for _, _, image in good], self.threshold, clock)
            classes = self.inference.predictor.classes
            with clock("encode"):  # zlib lets go of the GIL: the chunk's images side by side
                encoded = self.pool.map(lambda item: encode(*item[0], item[1], classes, self.shown), zip(good, labels))
                rows += [(str(p), json.dumps(record), *(files.get(record.get(kind), b"") for kind in FILES))
                         for (p, _, _), (record, files) in zip(good, encoded)]
        return [(*row, json.dumps(clock.seconds) if i == 0 else "") for i, row in enumerate(rows)]


FILES = ("mask", "overlay", "geotiff")  # an image's encoded files, by the record's key for their path
COLUMNS = ("file", "record", *FILES, "seconds")


def _share_tensorflow_threads(threads: int) -> None:
    """TensorFlow's thread pools (the Keras runtime, and the resizing every runtime does) sized to
    `threads`: by default each actor's pools would take every core of the node, however many
    actors share it. ONNX Runtime and LiteRT size theirs from seglab.inference.runtimes.cores() themselves."""
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # TensorFlow already ran something in this process: its pools are fixed
        pass


@contextlib.contextmanager
def session(options: RayOptions):
    """Ray for the block: started on this machine only, or joined at `options.address` (left
    running then), or the one this process already has; yields the seconds it took. A cluster
    that cannot be joined is a one-line error saying why, before anything is written."""
    import ray

    began = time.perf_counter()
    owned = not ray.is_initialized()
    if owned:
        try:
            ray.init(address=options.address or "local", include_dashboard=False, log_to_driver=False,
                     logging_level=logging.WARNING)
        except (ConnectionError, RuntimeError) as e:
            raise BadArgument(f"--address {options.address}: cannot join the Ray cluster: {_why(e)}.") from None
    try:
        yield time.perf_counter() - began
    finally:
        if owned:
            ray.shutdown()


def _why(error: BaseException) -> str:
    causes = [error]
    while causes[-1].__cause__ is not None:
        causes.append(causes[-1].__cause__)
    if any("Authentication" in type(c).__name__ or "InvalidAuthToken" in str(c) for c in causes):
        return ("it asks for an authentication token: set RAY_AUTH_MODE=token here, with the cluster's token in "
                "~/.ray/auth_token or RAY_AUTH_TOKEN (https://docs.ray.io/en/latest/ray-security/token-auth.html)")
    return f"{str(error).strip().splitlines()[0]}; check the address (the head node's `ray start` prints it)"


def predict_on_ray(options: RayOptions, job: dict, chunks: list, out: Path):
    """(what was written, seconds per stage) of predicting `chunks` on a Ray actor pool, in a
    `session`; the outputs are written into `out` as they arrive (`seglab.inference.chunks.Written`)."""
    import ray

    from seglab.inference.chunks import Written, store

    started = time.perf_counter()
    cpus = options.cpus or max(1.0, float(ray.cluster_resources().get("CPU", 1)) // options.actors)
    ray.data.DataContext.get_current().enable_progress_bars = False  # seglab draws its own
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # its execution plans and timings, at INFO
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)  # "progress bars disabled"
    items = [{"paths": [str(p) for p, _ in chunk], "stems": [s for _, s in chunk]} for chunk in chunks]
    # Blocks of a few chunks: small enough that every actor stays busy to the end.
    ds = ray.data.from_items(items, override_num_blocks=min(len(items), 64 * options.actors)).map_batches(
        ChunkPredictor, fn_constructor_args=(job,), batch_size=1, compute=ray.data.ActorPoolStrategy(size=options.actors),
        num_cpus=cpus, num_gpus=options.gpus,
        batch_format="numpy",
        runtime_env={"env_vars": {"OMP_NUM_THREADS": str(max(1, int(cpus))), "TF_CPP_MIN_LOG_LEVEL": "2"}})
    written, seconds = Written(), {}
    rows = (row for batch in ds.iter_batches(batch_size=None, batch_format="numpy")
            for row in zip(*(batch[column] for column in COLUMNS)))
    for file, record, *files, spent in progress(rows, sum(map(len, chunks)), "Predicting"):
        record = json.loads(record)
        for stage, value in (json.loads(spent) if spent else {}).items():
            seconds[f"actors: {stage}"] = seconds.get(f"actors: {stage}", 0.0) + value
        if "failed" in record:
            written.failed.append(record["failed"])
            continue
        files = {record[kind]: bytes(data) for kind, data in zip(FILES, files) if kind in record}
        written.add(Path(file), functools.partial(store, out, record, files))
        if written.full:
            break
    summary = {stage: round(value, 3) for stage, value in seconds.items()}
    # the actors' stages add up over actors running side by side: the driver's wall clock is "total"
    summary.update({"total": round(time.perf_counter() - started, 3), "actors": options.actors,
                    "cpus_per_actor": cpus, "gpus_per_actor": options.gpus})
    return written, summary
