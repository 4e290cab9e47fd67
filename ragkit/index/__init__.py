"""Vector indexes over encoded corpora (FAISS)."""

from ragkit.index.faiss_build import FaissBuild, faiss_build

__all__ = ["FaissBuild", "faiss_build"]
