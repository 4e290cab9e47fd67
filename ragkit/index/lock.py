"""One writer per index: a second `ragkit index` on the same directory stops at once with one line."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from ragkit.errors import RagkitError


@contextlib.contextmanager
def writer_lock(index_dir: Path) -> Iterator[None]:
    """Hold `<index>.lock` (an OS lock, which dies with its process: a crash never leaves it stuck).

    The file records the holder's PID for the error message; it is left in place, empty of meaning,
    when no one holds the lock.
    """
    path = index_dir.with_name(f"{index_dir.name}.lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    file = path.open("a+")
    try:
        fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        file.seek(0)
        holder = file.read().strip() or "another process"
        file.close()
        raise RagkitError(
            f"index {index_dir} is being updated by PID {holder}; wait for it to finish, then run again"
        ) from None
    try:
        file.seek(0)
        file.truncate()
        file.write(str(os.getpid()))
        file.flush()
        yield
    finally:
        fcntl.flock(file, fcntl.LOCK_UN)
        file.close()
