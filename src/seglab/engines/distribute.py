"""Data-parallel training on tf.distribute: which strategy `--distribute` picks, which process
writes the run folder, and how each input pipeline takes its share of a batch.

- `mirrored`: MirroredStrategy over this machine's GPUs (one process).
- `multi-worker`: MultiWorkerMirroredStrategy over the processes that `TF_CONFIG` names, as
  Vertex AI, Kubernetes operators and Slurm launchers set it. Every worker runs the same
  `seglab train` command; the chief (task `chief`, else `worker` 0) alone writes the run folder,
  which the others read on `--resume`, so it must lie on storage every worker sees.
- `auto`: multi-worker when TF_CONFIG names more than one worker, mirrored when more than one GPU
  is visible, else none: one process on its default device, today's path.

`--batch-size` is the global batch: each of the R replicas computes B / R samples of it, and the
gradients are averaged, so a run's learning rate means the same on 1 or 8 replicas.
"""
from __future__ import annotations

import contextlib
import errno
import faulthandler
import json
import os
import subprocess
import sys
from dataclasses import dataclass

from seglab.core.errors import BadArgument
from seglab.data.shard import Shard
from seglab.runs.config import DISTRIBUTES


@dataclass(frozen=True)
class Cluster:
    """This process's place in a training job."""

    name: str  # none, mirrored or multi-worker
    strategy: object | None = None  # a tf.distribute.Strategy, or None for the plain path
    replicas: int = 1
    workers: int = 1
    worker: int = 0  # this process's index among the workers, the chief first
    chief: bool = True  # writes the run folder

    @property
    def distributed(self) -> bool:
        return self.strategy is not None

    def replica_batch(self, batch_size: int) -> int:
        """The per-replica batch of a global `batch_size`; refused when it does not split evenly."""
        if batch_size % self.replicas:
            raise BadArgument(f"--batch-size {batch_size} is the global batch and must split evenly over the "
                             f"{self.replicas} replicas of this {self.name} job: give a multiple of {self.replicas}.")
        return batch_size // self.replicas

    def scope(self):
        import contextlib

        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()

    def describe(self) -> str:
        where = f"{self.workers} workers" if self.name == "multi-worker" else "one machine"
        return f"{self.name}: {self.replicas} replicas on {where}" + ("" if self.chief else f" (this is worker {self.worker})")


def tf_config() -> dict:
    """TF_CONFIG parsed ({} when unset); a malformed one is a ValueError saying what is wrong."""
    text = os.environ.get("TF_CONFIG", "").strip()
    if not text:
        return {}
    try:
        config = json.loads(text)
    except json.JSONDecodeError as e:
        raise BadArgument(f"TF_CONFIG is not valid JSON ({e.msg} at character {e.pos}). It should look like "
                         '{"cluster": {"worker": ["host1:port", "host2:port"]}, "task": {"type": "worker", "index": 0}}.') from None
    cluster, task = config.get("cluster"), config.get("task")
    if not isinstance(cluster, dict) or not isinstance(task, dict) or "type" not in task or "index" not in task:
        raise BadArgument('TF_CONFIG needs "cluster" (job name -> list of host:port) and "task" ({"type": ..., '
                         '"index": ...}); got ' + text[:200])
    unknown = sorted(set(cluster) - {"chief", "worker"})
    if unknown or task["type"] not in cluster:
        raise BadArgument(f"TF_CONFIG: seglab trains with MultiWorkerMirroredStrategy, whose cluster has 'chief' and "
                         f"'worker' jobs; got jobs {sorted(cluster)} and task {task}.")
    for job, addresses in cluster.items():
        if not isinstance(addresses, list) or not addresses:
            raise BadArgument(f"TF_CONFIG: cluster.{job} must be a list of \"host:port\" addresses; got {addresses!r}.")
        for address in addresses:
            if _port(address) is None:
                raise BadArgument(f"TF_CONFIG: cluster.{job} address {address!r} is not \"host:port\" with a port number "
                                  "from 1 to 65535, e.g. \"10.0.0.2:12345\".")
    index = task["index"]
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(cluster[task["type"]]):
        raise BadArgument(f"TF_CONFIG: task.index {index!r} names no {task['type']}: cluster.{task['type']} lists "
                          f"{len(cluster[task['type']])}, numbered from 0.")
    return config


def _port(address) -> int | None:
    """The port of a "host:port" address; None where there is none (or it is no port number)."""
    if not isinstance(address, str) or ":" not in address:
        return None
    port = address.rpartition(":")[2]
    return int(port) if port.isdigit() and 0 < int(port) < 65536 else None


def local_cluster(workers: int) -> list[dict]:
    """A TF_CONFIG for each of `workers` processes on this machine (127.0.0.1, free ports): to try
    a multi-worker job, or test one, without a second machine."""
    import socket

    sockets = [socket.socket() for _ in range(workers)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    cluster = {"worker": [f"127.0.0.1:{s.getsockname()[1]}" for s in sockets]}
    for s in sockets:
        s.close()
    return [{"cluster": cluster, "task": {"type": "worker", "index": i}} for i in range(workers)]


def _workers(config: dict) -> list[tuple[str, int]]:
    """(job, index) of every worker in TF_CONFIG, the chief first."""
    cluster = config.get("cluster", {})
    return [(job, i) for job in ("chief", "worker") for i in range(len(cluster.get(job, [])))]


def _worker_index(config: dict) -> int:
    """This process's index among TF_CONFIG's workers, the chief first (0 without TF_CONFIG)."""
    return _workers(config).index((config["task"]["type"], int(config["task"]["index"]))) if config else 0


def is_chief() -> bool:
    """Whether this process writes the run folder: the chief of the TF_CONFIG job, or the only process."""
    return _worker_index(tf_config()) == 0


def resolve_distribute(name: str) -> str:
    """'auto' -> the strategy for this process's machine and TF_CONFIG; other names are checked."""
    if name not in DISTRIBUTES:
        raise BadArgument(f"Unknown --distribute {name!r}. Use one of: {', '.join(DISTRIBUTES)}.")
    if name != "auto":
        return name
    if len(_workers(tf_config())) > 1:
        return "multi-worker"
    import tensorflow as tf

    return "mirrored" if len(tf.config.list_physical_devices("GPU")) > 1 else "none"


def start(name: str = "auto", worker_timeout: int = 300) -> Cluster:
    """The Cluster for `--distribute name`. For multi-worker this must run before any other
    TensorFlow work in the process (TensorFlow configures its collectives at start-up); it waits
    up to `worker_timeout` seconds for the other workers (`_others_awaited`)."""
    name = resolve_distribute(name)
    if name == "none":
        return Cluster("none")
    import tensorflow as tf

    if name == "mirrored":
        strategy = tf.distribute.MirroredStrategy(_mirrored_devices())
        return Cluster(name, strategy, strategy.num_replicas_in_sync)
    config = tf_config()
    _check_own_port(config)
    try:
        with _others_awaited(config, worker_timeout):
            strategy = tf.distribute.MultiWorkerMirroredStrategy()
    except RuntimeError as e:
        if "program startup" not in str(e):
            raise
        raise BadArgument("--distribute multi-worker must start before any other TensorFlow work in the process: run "
                         "`seglab train` as its own process (or call seglab.train first thing).") from None
    _keras_reduces_multi_worker_scalars()
    worker = _worker_index(config)
    return Cluster(name, strategy, strategy.num_replicas_in_sync, max(1, len(_workers(config))), worker, chief=worker == 0)


def _address(config: dict, job: str, index: int) -> str:
    return config["cluster"][job][index]


def _check_own_port(config: dict) -> None:
    """Refuse, in one line, a TF_CONFIG whose address for this worker has its port taken (by an
    earlier job still running, say): TensorFlow's server would fail to start with a stack trace."""
    import socket

    task = config["task"]
    address = _address(config, task["type"], task["index"])
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("", _port(address)))
        except OSError as e:
            raise BadArgument(f"TF_CONFIG: this worker's address {address} (task {task['type']} {task['index']}) cannot be "
                              f"served: port {_port(address)} {'is already in use' if e.errno == errno.EADDRINUSE else e.strerror}"
                              ". Stop what holds it (an earlier job?) or give this worker another port.") from None


# Run beside a worker while TensorFlow waits for the others: TensorFlow's wait holds the GIL in C++
# and takes no signal, so no thread of the worker's own can end it. The watcher prints the one line
# (unless told, by its stdin closing, that the wait is over); faulthandler's C timer then exits.
_WATCHER = """import select, sys
if not select.select([sys.stdin], [], [], float(sys.argv[1]))[0]:
    sys.stderr.write(sys.argv[2] + "\\n")
"""


@contextlib.contextmanager
def _others_awaited(config: dict, timeout: int):
    """Say whom this worker waits for, and end the process with exit code 1 and one line naming
    them when they have not all joined within `timeout` seconds (a worker that never starts would
    otherwise hold this one forever, silently)."""
    task = config["task"]
    others = [f"{job} {i} ({_address(config, job, i)})" for job, i in _workers(config)
              if (job, i) != (task["type"], task["index"])]
    print(f"Waiting for the other workers of TF_CONFIG to join: {', '.join(others)} (up to {timeout} s, --worker-timeout).",
          file=sys.stderr, flush=True)
    message = (f"error: the other workers did not all join within {timeout} s: {', '.join(others)}. Start `seglab train` "
               "on each with the same options and its own TF_CONFIG task, check that this machine reaches their "
               "addresses, or give a longer --worker-timeout.")
    watcher = subprocess.Popen([sys.executable, "-c", _WATCHER, str(timeout), message], stdin=subprocess.PIPE)
    with open(os.devnull, "w") as nowhere:
        faulthandler.dump_traceback_later(timeout + 2, exit=True, file=nowhere)  # exit code 1, after the line
        try:
            yield
        finally:
            faulthandler.cancel_dump_traceback_later()
            watcher.stdin.close()
            watcher.wait()


def _mirrored_devices() -> list[str]:
    """Every GPU TensorFlow sees; without one, every logical CPU (one, unless the process split its
    CPU with `tf.config.set_logical_device_configuration`, as the tests do to run two replicas)."""
    import tensorflow as tf

    return [d.name for d in tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")]


def distributed_dataset(cluster: Cluster, make, batch_size: int):
    """`make(shard)` -> a tf.data.Dataset, as this job's replicas read it: on the plain path
    `make(None)` itself, else one dataset per input pipeline, each its `Shard` of every batch."""
    if not cluster.distributed:
        return make(None)
    replica_batch = cluster.replica_batch(batch_size)

    def pipeline(context):
        return make(Shard(context.input_pipeline_id, context.num_input_pipelines, batch_size, replica_batch))
    return cluster.strategy.distribute_datasets_from_function(pipeline)


def build_for_fit(model, cluster: Cluster, batch_size: int, size: int) -> None:
    """Build the model's metrics, loss and optimizer from a batch's shapes before `fit`.

    Without a strategy, Keras 3.15 defers the optimizer's slot variables (Adam's moments) to the
    first training step, which creates them while it is traced; TensorFlow then traces the step
    again, as a function that may not create variables. Built here, it is traced once (a tiny
    U-Net's run: 1.1 of its 5.4 s of tracing).

    With one, Keras's fit first reduces a distributed batch with MEAN to learn the shapes
    (`_maybe_symbolic_build`), and MultiWorkerMirroredStrategy's collective reduce does not take
    an (images, masks) pair. Built here, under the strategy, that step has nothing to do and is
    skipped on this model object (a saved model knows nothing of it)."""
    if not cluster.distributed:
        if not model.optimizer.built:  # a resumed run's optimizer comes built, with its state
            model.optimizer.build(model.trainable_variables)
        return
    import numpy as np

    batch = cluster.replica_batch(batch_size)
    with cluster.strategy.scope():
        model._symbolic_build(data_batch=(np.zeros((batch, size, size, model.input_shape[-1]), np.float32),
                                          np.zeros((batch, size, size), np.uint8)))
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None


def synchronize_batch_norm(model, cluster: Cluster) -> None:
    """Batch normalisation computes its statistics over the global batch, not each replica's
    share: with a per-replica batch of 2 or 4, as segmentation often has, local statistics are
    noise, and synchronized ones normalise as one process would (three small all-reduces per
    layer and step). Saved models keep the flag; outside a strategy it changes nothing."""
    if cluster.replicas < 2:
        return
    import keras

    from seglab.models import all_layers

    for layer in all_layers(model):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.synchronized = True


def _keras_reduces_multi_worker_scalars() -> None:
    """Keras 3.15 reduces each step's logs across workers with `reduce("MEAN", v, axis=0)`, which
    fails on the scalar loss and metrics ("Invalid reduction dimension 0", keras-team/keras#20585):
    scalars are averaged over the replicas instead. The epoch's figures do not come from these
    (Keras reads the metrics' summed state at the epoch's end); they are the progress bar's."""
    from keras.src import tree
    from keras.src.backend.tensorflow import trainer

    original = trainer.reduce_per_replica
    if getattr(original, "seglab", False):
        return

    def reduce_per_replica(values, strategy, reduction):
        if reduction == "auto" and trainer._collective_all_reduce_multi_worker(strategy):
            return tree.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return original(values, strategy, reduction)
    reduce_per_replica.seglab = True
    trainer.reduce_per_replica = reduce_per_replica


PEER_ERRORS = ("UnavailableError", "CancelledError", "AbortedError", "DeadlineExceededError")


def lost_peer(error: BaseException, cluster: Cluster) -> str | None:
    """What TensorFlow said, when `error` means another worker of a multi-worker job stopped or
    became unreachable (it aborts the collectives: gRPC's 'Connection reset by peer' at once, or
    its missing heartbeats after seconds for a machine gone silent); None for any other error."""
    if cluster.workers < 2 or type(error).__name__ not in PEER_ERRORS:
        return None
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    at = next((i for i, line in enumerate(lines) if "Collective ops is aborted by" in line), 0)
    if not lines:
        return type(error).__name__
    return " ".join(lines[at:at + 2]) if lines[at].endswith(":") else lines[at]  # "...: " names the tasks next
