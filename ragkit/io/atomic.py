"""Write a file or a directory in one step, so a crash at any point leaves one complete copy."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import glob
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

_UMASK = os.umask(0o022)  # read once, at import (os.umask can only be read by setting it)
os.umask(_UMASK)


def swap_into_place(new: Path, directory: Path) -> None:
    """Move the finished `new` directory to `directory`, replacing what was there.

    Where the OS can exchange two paths in one step (Linux's renameat2), a reader finds the old or
    the new directory at every moment, and a kill right after the exchange leaves the old one at
    `new`'s name (to be discarded by the caller's next run). Elsewhere it takes two renames, and a
    kill between them leaves `<directory>.old-PID/` to put back.
    """
    if not directory.exists():
        new.rename(directory)
        return
    if _exchange(new, directory):  # `new` now names the old directory
        _discard(new)
        return
    old = directory.with_name(f"{directory.name}.old-{os.getpid()}")
    directory.rename(old)
    new.rename(directory)
    shutil.rmtree(old, ignore_errors=True)


def leftovers(directory: Path) -> list[Path]:
    """Old copies a killed swap left beside `directory` (`<name>.old-PID/`)."""
    return sorted(directory.parent.glob(f"{glob.escape(directory.name)}.old-*"))


def _discard(path: Path) -> None:
    """Out of the way under a name no one reads (`.old-PID`), then deleted."""
    old = path.with_name(f"{path.name.removesuffix('.building')}.old-{os.getpid()}")
    path.rename(old)
    shutil.rmtree(old, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (renameat2 with RENAME_EXCHANGE); False where the OS cannot."""
    if sys.platform != "linux":
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    if ctypes.get_errno() in (errno.EINVAL, errno.ENOSYS, errno.EXDEV, errno.ENOTSUP):
        return False  # a file system or kernel without it: fall back to two renames
    raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()), str(b))


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, *, replace: bool = True) -> Iterator[Path]:
    """A fresh temporary sibling of `target` to write (a file or a directory), moved onto `target` only
    when the block ends without an error; on an error it is removed and `target` is untouched.

    The temporary name keeps the suffix (`x.npy` -> `x.tmp-PID.npy`), for writers that add one.
    With `replace=False` an existing `target` wins (another process finished first) and the copy is dropped.
    """
    target = Path(target)
    tmp = target.with_name(f"{target.stem}.tmp-{os.getpid()}{target.suffix}")
    _remove(tmp)
    try:
        yield tmp
    except BaseException:
        _remove(tmp)
        raise
    if not replace and target.exists():
        _remove(tmp)
        return
    apply_umask(tmp)
    if tmp.is_dir():
        swap_into_place(tmp, target)
    else:
        os.replace(tmp, target)


def apply_umask(path: Path) -> None:
    """Give `path` (and, for a folder, all it holds) the modes a plain `open` would, under the user's
    umask: libraries that write through temporary files leave them 0600."""
    paths = [path, *path.rglob("*")] if path.is_dir() else [path]
    for p in paths:
        if not p.is_symlink():
            p.chmod((0o777 if p.is_dir() else 0o666) & ~_UMASK)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write `text` to `path` so that readers see the old file or the new one, never half of one."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
