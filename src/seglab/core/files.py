"""Writing a file so that a reader, or a process killed mid-write, never sees it half written:
under a temporary name beside it, renamed into place when complete."""
from __future__ import annotations

import errno
import os
from contextlib import contextmanager
from pathlib import Path

TMP_MARK = ".tmp"  # in every temporary name, so a resume can sweep what a kill left behind
FULL_DISK = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)  # no space, over quota, over the file size limit


def disk_full(error: BaseException) -> bool:
    """Whether `error` is a write that failed for want of space: the surroundings, not a bug."""
    return isinstance(error, OSError) and error.errno in FULL_DISK


@contextmanager
def atomic_path(path: Path):
    """Yield a temporary path beside `path` (same suffix, for writers that check it); rename it to
    `path` when the block succeeds."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}{TMP_MARK}{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as e:
        if e.filename in (None, str(tmp)):  # name the file the user asked for, not its temporary
            e.filename = str(path)
        raise
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: Path, text: str) -> None:
    """`path.write_text(text)`, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
