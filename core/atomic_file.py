"""Writing a file atomically: through a temporary file beside it, renamed into place.

A reader of the final name sees the previous file or the complete new one, never a
half-written one, whatever interrupts the writer (``os.replace`` is atomic within a
file system, hence the temporary file in the same folder).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path):
    """A temporary path to write ``path`` through; it replaces ``path`` when the block succeeds.

    Parameters
    ----------
    path : str or Path
        The final name; its folder is created when missing. The file gets the
        permissions of any new file (``0o666`` less the process's umask).

    Yields
    ------
    str
        An empty file ``<name>.<random>.part`` beside ``path``, removed when the
        block raises.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = str(path.parent / f"{path.name}.{secrets.token_hex(4)}.part")
        try:
            # not tempfile.mkstemp: its files are private (0o600) whatever the umask
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            break
        except FileExistsError:
            continue
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
