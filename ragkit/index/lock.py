"""One writer per index: a second `ragkit index` on the same directory stops at once with one line."""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from ragkit.errors import RagkitError
from ragkit.io import write_error

# Locks this process holds: lock file -> (holding thread, depth). Re-entrant within a thread, so a
# caller (the CLI) can take the lock before loading a model and the build inside takes it again.
_held: dict[Path, tuple[int, int]] = {}
_held_lock = threading.Lock()


@contextlib.contextmanager
def writer_lock(index_dir: Path) -> Iterator[None]:
    """Hold `<index>.lock` (an OS lock, which dies with its process: a crash never leaves it stuck).

    The file records the holder's PID for the error message; it is left in place, empty of meaning,
    when no one holds the lock.
    """
    path = index_dir.with_name(f"{index_dir.name}.lock")
    key, me = path.resolve(), threading.get_ident()
    with _held_lock:
        holder = _held.get(key)
        if holder is not None and holder[0] != me:
            raise RagkitError(
                f"index {index_dir} is being updated by another thread of this process; wait for it to "
                "finish, then run again"
            )
        if holder is not None:
            _held[key] = (me, holder[1] + 1)
    if holder is not None:
        try:
            yield
        finally:
            with _held_lock:
                _held[key] = (me, _held[key][1] - 1)
        return
    file = _open(path)
    try:
        fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        file.seek(0)
        pid = file.read().strip() or "another process"
        file.close()
        raise RagkitError(
            f"index {index_dir} is being updated by PID {pid}; wait for it to finish, then run again"
        ) from None
    with _held_lock:
        _held[key] = (me, 1)
    try:
        file.seek(0)
        file.truncate()
        file.write(str(os.getpid()))
        file.flush()
        yield
    finally:
        with _held_lock:
            del _held[key]
        fcntl.flock(file, fcntl.LOCK_UN)
        file.close()


def _open(path: Path) -> IO[str]:
    """The lock file, created with its folder; a read-only or full disk is one line."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return path.open("a+")
    except OSError as e:
        raise write_error(e, path.parent) or RagkitError(f"cannot create {path} ({e})") from None
