"""Corpora into FAISS indexes, and search over them."""

from ragkit.corpus import Fields
from ragkit.index.build import BuildReport, Index
from ragkit.index.chunking import ChunkingConfig
from ragkit.index.faiss_build import FaissBuild, faiss_build
from ragkit.index.retriever import Hit, Retriever

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
