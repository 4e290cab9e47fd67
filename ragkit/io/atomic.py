"""Write a file or a directory in one step, so a crash at any point leaves one complete copy."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path


def swap_into_place(new: Path, directory: Path) -> None:
    """Move the finished `new` directory to `directory`, replacing what was there."""
    old = directory.with_name(f"{directory.name}.old-{os.getpid()}")
    if directory.exists():
        directory.rename(old)
    new.rename(directory)
    shutil.rmtree(old, ignore_errors=True)


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
    elif tmp.is_dir():
        swap_into_place(tmp, target)
    else:
        os.replace(tmp, target)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
