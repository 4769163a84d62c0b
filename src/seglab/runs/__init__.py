"""The run folder: what `seglab train` writes and every later verb reads (`Run`), its
configuration (`config`), loading its models (`saving`) and its per-epoch samples (`samples`)."""
from seglab.runs.folder import (
    TMP_MARK,
    Run,
    atomic_path,
    check_output_dir,
    link_or_copy,
    make_output_dir,
    sha256,
    write_text,
)

__all__ = ["TMP_MARK", "Run", "atomic_path", "check_output_dir", "link_or_copy", "make_output_dir", "sha256", "write_text"]
