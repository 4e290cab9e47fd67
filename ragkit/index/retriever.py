"""`Retriever`: load an index directory and search it, the way a RAG app does."""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import faiss
import numpy as np

from ragkit.encoders import Encoder
from ragkit.encoders.encoder import check_texts
from ragkit.errors import RagkitError
from ragkit.index.docstore import DOCSTORE_FILE, Docstore
from ragkit.index.faiss_index import prepare_for_search
from ragkit.index.manifest import INDEX_FILE, IndexManifest
from ragkit.index.transform import Transform


@dataclass
class Hit:
    score: float  # cosine similarity (inner product of normalised vectors)
    doc_id: str
    text: str  # the chunk
    path: str  # relative to the corpus root
    title: str = ""
    metadata: dict = field(default_factory=dict)
    chunk_id: int = 0
    start: int = 0  # character offsets of the chunk in its document
    end: int = 0


class Retriever:
    """Search one index directory: the way a RAG app retrieves context.

    Build it with `Retriever.load(dir)`. `search` may be called from many threads at once (each
    thread reads the docstore through its own connection; faiss searches are read-only).
    """

    def __init__(
        self, index_dir: Path, encoder: Encoder, manifest: IndexManifest, search_params: dict | None = None
    ):
        self.index_dir, self.encoder, self.manifest = Path(index_dir), encoder, manifest
        try:
            index = faiss.read_index(str(self.index_dir / INDEX_FILE))
        except RuntimeError as e:
            raise RagkitError(
                f"{self.index_dir / INDEX_FILE} is missing or corrupt; rebuild with `rebuild`"
            ) from e
        self.index = prepare_for_search(index, {**manifest.search_params, **(search_params or {})})
        self.transform = Transform.load(self.index_dir, manifest.transform)
        self.store = Docstore(self.index_dir / DOCSTORE_FILE, readonly=True)

    @classmethod
    def load(
        cls,
        index_dir: str | Path = "ragkit-index",
        *,
        encoder: Encoder | None = None,
        device: str | None = None,
        dtype: str | None = None,
        attn_implementation: str | None = None,
        allow_unvalidated: bool = False,
        search_params: dict | None = None,
    ) -> Retriever:
        """Open an index; its encoder is loaded from the manifest unless a matching one is given.

        The manifest fixes everything that shapes the vectors (weights, pooling, input format,
        instructions, max length); `device`, `dtype` and `attn_implementation` only say how to run it.
        """
        manifest = IndexManifest.read(index_dir)
        if encoder is None:
            encoder = Encoder.load(
                manifest.encoder_config(),
                device=device,
                dtype=dtype,
                attn_implementation=attn_implementation,
                allow_unvalidated=allow_unvalidated,
            )
        if encoder.fingerprint()["config_hash"] != manifest.config_hash:
            raise RagkitError(
                f"this encoder does not match the one {index_dir} was built with "
                f"({manifest.encoder['source']!r}); query with that encoder or rebuild the index"
            )
        return cls(Path(index_dir), encoder, manifest, search_params)

    def search(
        self, query: str | Sequence[str], k: int = 10, filter: dict[str, str] | None = None
    ) -> list[Hit] | list[list[Hit]]:
        """Top-k chunks for one query (a list of Hits) or for each of several (a list of lists).

        `filter` keeps hits whose `path`, or metadata field, matches a glob: {"path": "docs/*.md"}.
        When a filter is selective, the search widens until k matching hits are found or the index
        is exhausted, so a filter never returns fewer hits than exist.
        """
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise RagkitError(f"`k` must be a whole number of at least 1, got {k!r}")
        filter = _check_filter(filter)
        queries = check_texts(query, "query")
        vectors = self.embed_queries(queries)
        total = self.index.ntotal
        fetch = min(10 * k if filter else k, total)  # filters drop hits: fetch more up front
        scores, positions = self.index.search(vectors, fetch)  # one batched search for all queries
        results = []
        for vector, row_scores, row_positions in zip(vectors, scores, positions, strict=True):
            hits, wider = self._hits(row_scores, row_positions, filter), fetch
            while len(hits) < k and wider < total:  # rare: a selective filter; search this query wider
                wider = min(4 * wider, total)
                wider_scores, wider_positions = self.index.search(vector[None], wider)
                hits = self._hits(wider_scores[0], wider_positions[0], filter)
            results.append(hits[:k])
        return results[0] if isinstance(query, str) else results

    def embed_queries(self, queries: Sequence[str]) -> np.ndarray:
        """Query vectors as the index holds documents: the index's encoder and instruction, then its PCA."""
        return self.transform.apply(self.encoder.encode_queries(queries))

    def _hits(self, scores: np.ndarray, positions: np.ndarray, filter: dict[str, str]) -> list[Hit]:
        found = [int(p) for p in positions if p >= 0]  # faiss pads missing results with -1 at the end
        hits = [Hit(score=float(s), **r) for s, r in zip(scores, self.store.chunks_at(found), strict=False)]
        return [h for h in hits if _matches(h, filter)]

    def close(self) -> None:
        self.store.close()


def _check_filter(filter) -> dict[str, str]:
    if filter is None:
        return {}
    if not isinstance(filter, dict):
        raise RagkitError(
            "`filter` must be a dict of field -> glob, e.g. {'path': 'docs/*.md'}, "
            f"got {type(filter).__name__}"
        )
    for key, pattern in filter.items():
        if not isinstance(key, str) or not isinstance(pattern, str):
            raise RagkitError(f"`filter` maps field names to glob strings; got {key!r}: {pattern!r}")
    return filter


def _matches(hit: Hit, filter: dict[str, str]) -> bool:
    for key, pattern in filter.items():
        value = hit.path if key == "path" else hit.metadata.get(key)
        if value is None or not fnmatch.fnmatchcase(str(value), pattern):
            return False
    return True
