"""Corpora into FAISS indexes, and search over them.

The names below load on first use: importing a part (`ragkit.index.lexical`, `.chunking`, `.retriever`)
loads that part alone, not the build side (FAISS building, calibration, the query generator, Ray).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ragkit.corpus import Fields
    from ragkit.index.build import BuildReport, Index
    from ragkit.index.chunking import ChunkingConfig
    from ragkit.index.faiss_build import FaissBuild, faiss_build
    from ragkit.index.retriever import Hit, Retriever

_WHERE = {
    "BuildReport": "ragkit.index.build",
    "ChunkingConfig": "ragkit.index.chunking",
    "FaissBuild": "ragkit.index.faiss_build",
    "Fields": "ragkit.corpus",
    "Hit": "ragkit.index.retriever",
    "Index": "ragkit.index.build",
    "Retriever": "ragkit.index.retriever",
    "faiss_build": "ragkit.index.faiss_build",
}
__all__ = [
    "BuildReport",
    "ChunkingConfig",
    "FaissBuild",
    "Fields",
    "Hit",
    "Index",
    "Retriever",
    "faiss_build",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'ragkit.index' has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
