"""Corpora into FAISS indexes, and search over them.

The names below load on first use: importing a part (`ragkit.index.retriever`, `.faiss_index`) loads that
part alone, not the build side (FAISS building, calibration, the query generator, Ray). Chunking, BM25 and
fusion, which adapt and eval use too, live below this package in `ragkit.retrieval`.
`faiss_build` is the exception, imported now: its module has the same name, and importing the module
would otherwise shadow the function.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ragkit.index.faiss_build import FaissBuild, faiss_build

if TYPE_CHECKING:
    from ragkit.corpus import Fields
    from ragkit.index.build import BuildReport, Index
    from ragkit.index.retriever import Hit, Retriever
    from ragkit.retrieval.chunking import ChunkingConfig

_WHERE = {
    "BuildReport": "ragkit.index.build",
    "ChunkingConfig": "ragkit.retrieval.chunking",
    "Fields": "ragkit.corpus",
    "Hit": "ragkit.index.retriever",
    "Index": "ragkit.index.build",
    "Retriever": "ragkit.index.retriever",
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
