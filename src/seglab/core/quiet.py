"""Loading TensorFlow without its start-up noise.

TensorFlow's native code logs through absl before any log level applies, so TF_CPP_MIN_LOG_LEVEL
does not silence it: on a machine without a GPU every command printed "Could not find cuda
drivers" and "failed call to cuInit". Those lines come while TensorFlow is imported and the GPUs
are first listed; `load_tensorflow` does both with the process's stderr (file descriptor 2)
read through a pipe, drops the lines known to be that noise and passes on everything else.
"""
from __future__ import annotations

import os
import re
import sys
import threading
from contextlib import contextmanager

NOISE = re.compile(
    rb"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    rb"|[IWE]\d{4} [\d:. ]+\d+ (cudart_stub|cuda_platform|cuda_executor|cuda_diagnostics|cpu_feature_guard|port)\.cc:\d+\].*)\r?$")


@contextmanager
def native_stderr_filtered(noise: re.Pattern = NOISE):
    """Within the block, lines written to file descriptor 2 that match `noise` are dropped."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr to filter
        yield
        return
    read, write = os.pipe()
    os.dup2(write, 2)
    os.close(write)
    captured = []
    reader = threading.Thread(target=lambda: captured.append(_read_all(read)), daemon=True)
    reader.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)  # closes the pipe's last write end: the reader sees its end
        os.close(saved)
        reader.join()
        os.close(read)
        kept = [line for line in (captured[0] if captured else b"").splitlines(keepends=True) if not noise.match(line.rstrip(b"\n"))]
        if kept:
            os.write(2, b"".join(kept))


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks)


def load_tensorflow() -> None:
    """Import TensorFlow and list its devices once, without the start-up noise."""
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with native_stderr_filtered():
        import tensorflow as tf

        tf.config.list_physical_devices("GPU")
