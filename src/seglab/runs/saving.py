"""Loading a saved seglab model: turns an unreadable file into an error that says what to do."""
from __future__ import annotations

import zipfile
from pathlib import Path

import keras

import seglab.models  # noqa: F401  (registers seglab's layers, losses and metrics, so safe mode loads them)
from seglab.core.errors import BadArgument, NotFound


def load_model(path, compile: bool = True) -> keras.Model:
    """Load a `.keras` file written by seglab (in Keras's safe mode); a missing, truncated or
    corrupt file is a ValueError naming it and how to recover."""
    path = Path(path)
    if not path.is_file():
        raise NotFound(f"{path} not found.")
    hint = (" A run keeps two models: model.keras (the best epoch) and last.keras (the latest, for --resume);"
            " if one is damaged, the other may still load, else train again.")
    if not zipfile.is_zipfile(path):
        raise BadArgument(f"{path} is unreadable: not a Keras model archive (truncated or corrupt, "
                         f"{path.stat().st_size:,} bytes).{hint}")
    try:
        return keras.models.load_model(path, compile=compile)
    except ValueError as e:
        if "safe_mode" not in str(e):
            raise _unreadable(path, e, hint) from None
        # Keras refuses a layer that would run the file's own Python code (a Lambda): the file may
        # be whole, and seglab, which never writes such layers, will not run it
        raise BadArgument(f"{path} holds Python code (a Lambda layer or similar) that Keras's safe mode will not run; "
                          "seglab never writes such layers and never loads such files. Use a model seglab trained, "
                          "or rebuild this one without code in the file.") from None
    except (zipfile.BadZipFile, OSError, EOFError, KeyError, TypeError) as e:
        raise _unreadable(path, e, hint) from None


def _unreadable(path: Path, e: Exception, hint: str) -> BadArgument:
    return BadArgument(f"{path} is unreadable: Keras could not load it ({type(e).__name__}: "
                       f"{str(e).splitlines()[0][:200] if str(e) else 'no detail'}).{hint}")
