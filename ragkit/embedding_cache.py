"""Vectors cached on disk, so no model embeds the same texts twice: a second evaluation with the same
encoder embeds only queries, and a distillation teacher embeds its texts once for every run that uses them.

Vectors are stored per block of texts, keyed by the model's fingerprint and the block's texts: an
interrupted run resumes from the last finished block, and a changed text misses only its block.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ragkit.io import atomic_path
from ragkit.paths import ragkit_home

BLOCK = 256  # also the progress bar's step


def cache_dir() -> Path:
    """Where vectors are cached between runs (eval corpora, distillation teachers); the cache of
    ragkit 0.5 and before ($RAGKIT_HOME/eval/embeddings) is moved here the first time."""
    root, before = ragkit_home() / "embeddings", ragkit_home() / "eval" / "embeddings"
    if before.is_dir() and not root.exists():
        with contextlib.suppress(OSError):  # another process moved it first
            before.rename(root)
    return root


def cached_embeddings(
    key: str,
    texts: Sequence[str],
    embed: Callable[[list[str]], np.ndarray],
    *,
    root: Path | None = None,
    on_block: Callable[[int, bool], None] = lambda n, hit: None,
) -> np.ndarray:
    """`embed(texts)` in blocks, each read from `root` when an earlier run stored it.

    `on_block(n, cached)` is called after each block (for progress bars).
    """
    root = Path(root) if root is not None else cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    parts = []
    for start in range(0, len(texts), BLOCK):
        block = list(texts[start : start + BLOCK])
        digest = hashlib.sha256("\0".join([key, *block]).encode()).hexdigest()[:32]
        path = root / f"{digest}.npy"
        if path.is_file():
            vectors, hit = np.load(path), True
        else:
            vectors, hit = np.ascontiguousarray(embed(block), dtype=np.float32), False
            with atomic_path(path) as tmp:
                np.save(tmp, vectors)
        parts.append(vectors)
        on_block(len(block), hit)
    if not parts:
        return np.zeros((0, 0), dtype=np.float32)
    return np.concatenate(parts)
