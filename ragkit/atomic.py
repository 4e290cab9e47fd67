"""Replace a directory in one step, so a crash at any point leaves one complete copy."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def swap_into_place(new: Path, directory: Path) -> None:
    """Move the finished `new` directory to `directory`, replacing what was there."""
    old = directory.with_name(f"{directory.name}.old-{os.getpid()}")
    if directory.exists():
        directory.rename(old)
    new.rename(directory)
    shutil.rmtree(old, ignore_errors=True)
