"""Where ragkit keeps converted weights and other caches."""

from __future__ import annotations

import os
from pathlib import Path


def ragkit_home() -> Path:
    """`$RAGKIT_HOME`, else `$XDG_CACHE_HOME/ragkit`, else `~/.cache/ragkit`."""
    if env := os.environ.get("RAGKIT_HOME"):
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "ragkit"
