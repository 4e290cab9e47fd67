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
from ragkit.index.fusion import (
    DEFAULT_METHOD,
    DEFAULT_MODE,
    DEFAULT_WEIGHT,
    HYBRID_CANDIDATES,
    SEARCH_MODES,
    FusionMethod,
    SearchMode,
    check_fusion,
    fuse,
)
from ragkit.index.lexical import LEXICAL_DIR, LexicalIndex
from ragkit.index.manifest import INDEX_FILE, IndexManifest
from ragkit.index.transform import Transform


@dataclass
class Hit:
    score: float  # dense: cosine similarity; bm25: BM25 score; hybrid: the fused score
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
        self.lexical = LexicalIndex.load(self.index_dir / LEXICAL_DIR) if manifest.lexical else None

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
        self,
        query: str | Sequence[str],
        k: int = 10,
        filter: dict[str, str] | None = None,
        *,
        mode: SearchMode | None = None,
        method: FusionMethod = DEFAULT_METHOD,
        weight: float = DEFAULT_WEIGHT,
    ) -> list[Hit] | list[list[Hit]]:
        """Top-k chunks for one query (a list of Hits) or for each of several (a list of lists).

        `mode`: "dense" (the encoder's vectors), "bm25" (the index's BM25 of the same chunks) or
        "hybrid" (both, fused by `method`, "weighted" or "rrf", with `weight` the dense share); the
        default is `DEFAULT_MODE` where the index has a BM25 part, else dense.
        `filter` keeps hits whose `path`, or metadata field, matches a glob: {"path": "docs/*.md"}.
        When a filter is selective, the search widens until k matching hits are found or the index
        is exhausted, so a filter never returns fewer hits than exist.
        """
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise RagkitError(f"`k` must be a whole number of at least 1, got {k!r}")
        filter = _check_filter(filter)
        mode = self.resolve_mode(mode)
        check_fusion(method, weight)
        queries = check_texts(query, "query")
        vectors = self.embed_queries(queries) if mode != "bm25" else None
        total = self.index.ntotal
        fetch = min(10 * k if filter else k, total)  # filters drop hits: fetch more up front
        if mode == "hybrid":
            fetch = min(max(fetch, HYBRID_CANDIDATES), total)  # as measured: each side's top 1000
        results = []
        for i, text in enumerate(queries):
            wider = fetch
            while True:
                ranked = self._ranked(
                    mode, text, None if vectors is None else vectors[i], wider, method, weight
                )
                hits = self._hits(ranked, filter, k)
                if len(hits) >= k or wider >= total:  # rare: a selective filter; search this query wider
                    break
                wider = min(4 * wider, total)
            results.append(hits[:k])
        return results[0] if isinstance(query, str) else results

    def ranked(
        self,
        queries: Sequence[str],
        n: int,
        *,
        mode: SearchMode | None = None,
        method: FusionMethod = DEFAULT_METHOD,
        weight: float = DEFAULT_WEIGHT,
    ) -> list[dict[int, float]]:
        """Per query, index position -> score, best first: each side's top n (fused in hybrid mode).
        What `search` ranks before reading hits; `ragkit eval --index` scores it."""
        mode = self.resolve_mode(mode)
        check_fusion(method, weight)
        queries = check_texts(queries, "query")
        vectors = self.embed_queries(queries) if mode != "bm25" else [None] * len(queries)
        n = min(n, self.index.ntotal)
        return [self._ranked(mode, q, v, n, method, weight) for q, v in zip(queries, vectors, strict=True)]

    def _ranked(
        self, mode: str, query: str, vector: np.ndarray | None, n: int, method: str, weight: float
    ) -> dict[int, float]:
        dense: dict[int, float] = {}
        if mode != "bm25":
            scores, positions = self.index.search(vector[None], n)
            dense = {int(p): float(s) for s, p in zip(scores[0], positions[0], strict=True) if p >= 0}
        if mode == "dense":
            return dense
        (lexical,) = self.lexical.search([query], n)
        if mode == "bm25":
            return lexical
        return fuse(dense, lexical, method, weight)

    def embed_queries(self, queries: Sequence[str]) -> np.ndarray:
        """Query vectors as the index holds documents: the index's encoder and instruction, then its PCA."""
        return self.transform.apply(self.encoder.encode_queries(queries))

    def _hits(self, ranked: dict[int, float], filter: dict[str, str], k: int) -> list[Hit]:
        """The first k hits of a ranking that pass the filter (records read a page at a time)."""
        ordered, hits, page = list(ranked), [], max(k, 10 * k if filter else k)
        for first in range(0, len(ordered), page):
            positions = ordered[first : first + page]
            records = self.store.chunks_at(positions)
            found = [Hit(score=ranked[p], **r) for p, r in zip(positions, records, strict=False)]
            hits += [h for h in found if _matches(h, filter)]
            if len(hits) >= k:
                break
        return hits

    def resolve_mode(self, mode: str | None) -> str:
        """The mode a search with `mode` runs: the default for None, else `mode` if this index has it."""
        if mode is None:
            return DEFAULT_MODE if self.lexical is not None else "dense"
        if mode not in SEARCH_MODES:
            raise RagkitError(f"unknown search `mode` {mode!r}: use one of {', '.join(SEARCH_MODES)}")
        if mode != "dense" and self.lexical is None:
            raise RagkitError(
                f"{self.index_dir} has no BM25 part (built by an older ragkit), so only dense search; "
                f"run `ragkit index CORPUS --index {self.index_dir}` to add it"
            )
        return mode

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
