"""How every benchmark prints what it measured: one JSON line per measurement, with the machine it
ran on (CPU model, cores and the flags that change speed, from `seglab.core.machine`) and, where
a model trained, the precision it trained in. The same benchmark differs about 4x between an
AVX2-only CPU and one with AVX-512 bfloat16, so a figure without its machine cannot be compared."""
from __future__ import annotations

import json


def emit(record: dict, precision: str | None = None) -> None:
    """Print `record` as a JSON line, the machine (and `precision`, when given) added after it."""
    # imported here, not above: some benchmarks put ../src on sys.path first
    from seglab.core.machine import describe

    print(json.dumps({**record, **({"precision": precision} if precision else {}), **describe()}), flush=True)


def run_precision(run) -> str:
    """The precision policy a `seglab train` run folder trained in (config.yaml's setup)."""
    from seglab.runs import Run

    return Run(run).config.setup.precision
