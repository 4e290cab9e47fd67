"""`Retriever`: load an index directory and search it, the way a RAG app does."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import overload

import faiss
import numpy as np

from ragkit.encoders import Encoder
from ragkit.encoders.encoder import check_texts
from ragkit.encoders.precision import Precision
from ragkit.errors import RagkitError
from ragkit.index.docstore import DOCSTORE_FILE, Docstore
from ragkit.index.faiss_index import prepare_for_search, selector_params
from ragkit.index.filters import compile_filter
from ragkit.index.manifest import IndexManifest
from ragkit.index.ondisk import read_index
from ragkit.index.rerank import RERANK_TOP, CrossEncoderLike, load_reranker
from ragkit.index.rerank import rerank as reranked
from ragkit.index.search_setting import FALLBACK, SearchSetting, resolve_setting
from ragkit.index.transform import Transform
from ragkit.retrieval.fusion import HYBRID_CANDIDATES, FusionMethod, SearchMode
from ragkit.retrieval.lexical import LexicalIndex


@dataclass
class Hit:
    """One search result: a chunk, where it came from, and its score in the search's mode."""

    score: float  # dense: cosine similarity; bm25: BM25 score; hybrid: the fused score
    doc_id: str
    text: str  # the chunk
    path: str  # relative to the corpus root
    title: str = ""
    metadata: dict = field(default_factory=dict)
    chunk_id: int = 0
    start: int = 0  # character offsets of the chunk in its document
    end: int = 0
    retrieval_score: float | None = None  # the search's score, when a reranker replaced `score`


@dataclass(frozen=True)
class Snapshot:
    """One version of an index directory, loaded whole: what a search reads from start to end."""

    manifest: IndexManifest
    index: faiss.Index  # on the GPUs when faiss-gpu sees any
    cpu_index: faiss.Index  # filtered searches pass faiss an ID selector, which only CPU indexes take
    transform: Transform
    store: Docstore
    lexical: LexicalIndex | None

    @classmethod
    def open(cls, index_dir: Path, manifest: IndexManifest, search_params: dict | None) -> Snapshot:
        """Load the FAISS index, transform and BM25 part of the generation `manifest` names."""
        index_path = index_dir / manifest.index_path
        try:
            index = read_index(index_path)
        except RuntimeError as e:
            raise RagkitError(
                f"{index_path} is missing or corrupt; build the index again from the same corpus (it is "
                "rebuilt from the docstore, nothing is embedded), or anew with `rebuild`"
            ) from e
        params = {**manifest.search_params, **(search_params or {})}
        # Lists kept on disk stay there: copying them to a GPU would need them all in memory.
        on_device = prepare_for_search(index, params, gpu=not manifest.index.on_disk)
        cpu = index if on_device is index else prepare_for_search(read_index(index_path), params, gpu=False)
        return cls(
            manifest,
            on_device,
            cpu,
            Transform.load(index_dir, manifest.transform),
            Docstore(index_dir / DOCSTORE_FILE, generation=manifest.generation, readonly=True),
            # Dense search needs no BM25 part: a missing one fails only the searches that use it.
            LexicalIndex.load(lexical) if (lexical := index_dir / manifest.lexical_path).is_dir() else None,
        )

    @classmethod
    def open_consistent(
        cls, index_dir: Path, manifest: IndexManifest, search_params: dict | None
    ) -> Snapshot:
        """`open`, again if `ragkit index` swapped a new version in while the parts were being read."""
        for _ in range(3):
            snapshot = cls.open(index_dir, manifest, search_params)
            try:
                now = IndexManifest.read(index_dir)
            except RagkitError:  # mid-swap: the parts read were whole; the next refresh sees the new one
                return snapshot
            if now == manifest:
                return snapshot
            manifest = now
        return snapshot


class Retriever:
    """Search one index directory: the way a RAG app retrieves context.

    Build it with `Retriever.load(dir)`. `search` may be called from many threads at once (faiss
    searches are read-only, the docstore's connection is shared under a lock). While `ragkit index`
    updates the directory, searches keep answering from the version loaded; `refresh()` loads the new
    one once it is swapped in.
    """

    def __init__(
        self, index_dir: Path, encoder: Encoder, manifest: IndexManifest, search_params: dict | None = None
    ):
        self.index_dir, self.encoder, self.search_params = Path(index_dir), encoder, search_params
        self.snapshot = Snapshot.open_consistent(self.index_dir, manifest, search_params)

    # The parts of the current snapshot (a search takes the snapshot once and reads only it).
    manifest = property(lambda self: self.snapshot.manifest)
    index = property(lambda self: self.snapshot.index)
    transform = property(lambda self: self.snapshot.transform)
    store = property(lambda self: self.snapshot.store)
    lexical = property(lambda self: self.snapshot.lexical)

    def refresh(self) -> bool:
        """Load the directory's index again if `ragkit index` has swapped in a new version since;
        True if it did. Searches already running finish on the version they started with."""
        try:
            manifest = IndexManifest.read(self.index_dir)
        except RagkitError:
            return False  # mid-swap, or removed: keep answering from the loaded version
        if manifest == self.manifest:
            return False
        if manifest.config_hash != self.encoder.fingerprint().config_hash:
            raise RagkitError(
                f"{self.index_dir} was rebuilt with another encoder ({manifest.encoder.source!r}); "
                "load it again with `Retriever.load`"
            )
        try:
            self.snapshot = Snapshot.open_consistent(self.index_dir, manifest, self.search_params)
        except RagkitError:
            return False  # a part vanished mid-swap: keep the loaded version; the next refresh retries
        return True

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
        precision: Precision | None = None,
    ) -> Retriever:
        """Open an index; its encoder is loaded from the manifest unless a matching one is given.

        The manifest fixes everything that shapes the vectors (weights, pooling, input format,
        instructions, max length); `device`, `dtype`, `precision` and `attn_implementation` only say
        how to run it. `precision` defaults to the one the documents were encoded in, where the device
        computes it natively.
        """
        manifest = IndexManifest.read(index_dir)
        if encoder is None:
            encoder = manifest.load_encoder(
                device=device,
                dtype=dtype,
                attn_implementation=attn_implementation,
                allow_unvalidated=allow_unvalidated,
                precision=precision,
            )
        if mismatch := manifest.encoder_mismatch(Path(index_dir), encoder.fingerprint(), reading=True):
            raise RagkitError(mismatch)
        return cls(Path(index_dir), encoder, manifest, search_params)

    @overload
    def search(  # type: ignore[overload-overlap]  # a str is a Sequence[str]; this one is checked first
        self,
        query: str,
        k: int = 10,
        filter: dict | None = None,
        *,
        mode: SearchMode | None = None,
        method: FusionMethod | None = None,
        weight: float | None = None,
        setting: SearchSetting | None = None,
        query_vectors: np.ndarray | None = None,
        rerank: str | CrossEncoderLike | None = None,
        rerank_top: int = RERANK_TOP,
    ) -> list[Hit]: ...

    @overload
    def search(
        self,
        query: Sequence[str],
        k: int = 10,
        filter: dict | None = None,
        *,
        mode: SearchMode | None = None,
        method: FusionMethod | None = None,
        weight: float | None = None,
        setting: SearchSetting | None = None,
        query_vectors: np.ndarray | None = None,
        rerank: str | CrossEncoderLike | None = None,
        rerank_top: int = RERANK_TOP,
    ) -> list[list[Hit]]: ...

    def search(
        self,
        query: str | Sequence[str],
        k: int = 10,
        filter: dict | None = None,
        *,
        mode: SearchMode | None = None,
        method: FusionMethod | None = None,
        weight: float | None = None,
        setting: SearchSetting | None = None,
        query_vectors: np.ndarray | None = None,
        rerank: str | CrossEncoderLike | None = None,
        rerank_top: int = RERANK_TOP,
    ) -> list[Hit] | list[list[Hit]]:
        """Top-k chunks for one query (a list of Hits) or for each of several (a list of lists).

        `mode`: "dense" (the encoder's vectors), "bm25" (the index's BM25 of the same chunks) or
        "hybrid" (both, fused by `method`, "weighted" or "rrf", with `weight` the dense share). What
        is not given comes from the setting the index calibrated itself to when it was built
        (`resolve`, ragkit/index/calibration.py); a `method` or `weight` alone means hybrid.
        `setting`: a `SearchSetting` already resolved (`resolve`), instead of `mode`, `method` and
        `weight`: what the CLI, the server and the integrations pass, so the choice is made once.
        `filter` (ragkit/index/filters.py) keeps chunks by path, doc id, title or metadata:
        {"path": "docs/*.md"}, {"year": {"$gte": 2020}}, {"$or": [...]}. The docstore evaluates it and
        only matching chunks are ranked, so a filter returns exactly the matching top k.
        `query_vectors`: the queries' vectors from `encoder.encode_queries`, if already encoded (a
        server batches them across requests); the index's PCA is applied here.
        `rerank`: a sentence-transformers CrossEncoder (or its path or Hub id) that reorders the
        search's top `rerank_top` hits by reading each with the query (ragkit/index/rerank.py); the
        k best come back with its scores.
        """
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise RagkitError(f"`k` must be a whole number of at least 1, got {k!r}")
        if isinstance(rerank_top, bool) or not isinstance(rerank_top, int) or rerank_top < 1:
            raise RagkitError(f"`rerank_top` must be a whole number of at least 1, got {rerank_top!r}")
        reranker = load_reranker(rerank) if rerank is not None else None
        snapshot = self.snapshot
        queries = [query] if isinstance(query, str) else query
        n = max(k, rerank_top) if reranker is not None else k
        setting = self._setting(snapshot, setting, mode, method, weight)
        ranked = self._ranked(snapshot, queries, n, setting, filter, query_vectors)
        results = [_hits(snapshot, ranking, n) for ranking in ranked]
        if reranker is not None:
            results = [reranked(reranker, q, hits, k) for q, hits in zip(queries, results, strict=True)]
        return results[0] if isinstance(query, str) else results

    def ranked(
        self,
        queries: Sequence[str],
        n: int,
        *,
        mode: SearchMode | None = None,
        method: FusionMethod | None = None,
        weight: float | None = None,
        setting: SearchSetting | None = None,
        filter: dict | None = None,
    ) -> list[dict[int, float]]:
        """Per query, chunk id -> score, best first, for the top n chunks (the top n of each
        side, fused, in hybrid mode, where each side retrieves at least `HYBRID_CANDIDATES`).
        What `search` ranks before reading hits; `ragkit eval --index` scores it."""
        snapshot = self.snapshot
        setting = self._setting(snapshot, setting, mode, method, weight)
        return self._ranked(snapshot, queries, n, setting, filter)

    def _setting(
        self,
        snapshot: Snapshot,
        setting: SearchSetting | None,
        mode: str | None,
        method: str | None,
        weight: float | None,
    ) -> SearchSetting:
        """`setting` as given, else the one `mode`, `method` and `weight` resolve to."""
        if setting is None:
            return resolve_setting(snapshot.manifest.calibration, mode, method, weight)
        if not isinstance(setting, SearchSetting):
            raise RagkitError(
                f"`setting` must be a SearchSetting (Retriever.resolve gives one), got {setting!r}"
            )
        if (mode, method, weight) != (None, None, None):
            raise RagkitError("give either `setting` or `mode`/`method`/`weight`, not both")
        return setting

    def _ranked(
        self,
        snapshot: Snapshot,
        queries: Sequence[str],
        n: int,
        setting: SearchSetting,
        filter: dict | None,
        query_vectors: np.ndarray | None = None,
    ) -> list[dict[int, float]]:
        mode = setting.mode
        bm25 = None if mode == "dense" else snapshot.lexical
        if mode != "dense" and bm25 is None:
            raise RagkitError(
                f"the BM25 part of the index ({self.index_dir / snapshot.manifest.lexical_path}) is missing; "
                "search with `mode` dense, or update the index from its corpus (ragkit index / Index.build) "
                "to rebuild it"
            )
        allowed = None
        if filter is not None:
            allowed = snapshot.store.ids_where(*compile_filter(filter))
        queries = check_texts(queries, "query")
        vectors: Sequence[np.ndarray | None] | np.ndarray  # rows; None where BM25 needs no vector
        if mode == "bm25":
            vectors = [None] * len(queries)
        elif query_vectors is not None:
            query_vectors = np.asarray(query_vectors, dtype=np.float32)
            if query_vectors.ndim != 2 or len(query_vectors) != len(queries):
                raise RagkitError(f"{len(query_vectors)} `query_vectors` for {len(queries)} queries")
            if query_vectors.shape[1] != self.encoder.dim:
                raise RagkitError(
                    f"`query_vectors` have {query_vectors.shape[1]} dims; this index's encoder gives "
                    f"{self.encoder.dim}"
                )
            vectors = snapshot.transform.apply(query_vectors)
        else:
            vectors = self._embed(snapshot, queries)
        total = snapshot.index.ntotal if allowed is None else len(allowed)
        if total == 0:
            return [{} for _ in queries]
        fetch = min(max(n, HYBRID_CANDIDATES) if mode == "hybrid" else n, total)
        rankings = []
        for query, vector in zip(queries, vectors, strict=True):
            dense = self._dense(snapshot, vector, fetch, allowed) if vector is not None else {}
            lexical = bm25.search([query], fetch, allowed)[0] if bm25 is not None else {}
            ranking = (
                dense if mode == "dense" else lexical if mode == "bm25" else setting.fuse(dense, lexical)
            )
            rankings.append(dict(itertools.islice(ranking.items(), n)))
        return rankings

    def _dense(
        self, snapshot: Snapshot, vector: np.ndarray, n: int, allowed: np.ndarray | None
    ) -> dict[int, float]:
        """The top n chunk ids by inner product, among `allowed` ones if given."""
        if allowed is None:
            scores, ids = snapshot.index.search(vector[None], n)
        else:
            params = selector_params(snapshot.cpu_index, allowed)
            scores, ids = snapshot.cpu_index.search(vector[None], n, params=params)
            if (ids[0] >= 0).sum() < n:  # an IVF index probed too few lists: score them exactly
                stored = snapshot.transform.apply(snapshot.store.vectors_at(allowed, self.encoder.dim))
                exact = stored @ vector
                top = np.argsort(-exact, kind="stable")[:n]
                return {int(allowed[i]): float(exact[i]) for i in top}
        return {int(i): float(s) for s, i in zip(scores[0], ids[0], strict=True) if i >= 0}

    def embed_queries(self, queries: Sequence[str]) -> np.ndarray:
        """Query vectors as the index holds documents: the index's encoder and instruction, then its PCA."""
        return self._embed(self.snapshot, queries)

    def _embed(self, snapshot: Snapshot, queries: Sequence[str]) -> np.ndarray:
        return snapshot.transform.apply(self.encoder.encode_queries(queries))

    def resolve(
        self, mode: str | None = None, method: str | None = None, weight: float | None = None
    ) -> SearchSetting:
        """The setting a search with these options runs (`resolve_setting`): what is given wins, the
        rest comes from the index's calibration, else the dev-chosen fallback. Resolve once and pass
        the result as `search(..., setting=)`."""
        return resolve_setting(self.manifest.calibration, mode, method, weight)

    def explain(self, setting: SearchSetting) -> str:
        """Why a search ran with `setting`, in a line (`ragkit query` prints it)."""
        calibration = self.manifest.calibration
        if calibration is not None and setting == calibration.setting:
            return calibration.reason()
        if calibration is None and setting == FALLBACK:
            return (
                "the default chosen on dev splits: this index has no calibration (too few sentences to "
                "draw pseudo-queries from, or built before ragkit calibrated)"
            )
        return "as asked"

    def close(self) -> None:
        """Close the docstore connection."""
        self.store.close()


def _hits(snapshot: Snapshot, ranked: dict[int, float], k: int) -> list[Hit]:
    records = snapshot.store.chunks_at(list(ranked)[:k])
    return [Hit(score=ranked[r["chunk_id"]], **r) for r in records]
