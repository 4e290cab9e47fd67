"""mteb `SearchProtocol`s backed by FAISS: what evaluation searches with.

`DenseSearch` embeds a task's corpus (cached) and builds the index with the same transform (PCA)
and factory code as `ragkit index`; `IndexSearch` searches an index directory built by `ragkit
index`, through the same `Retriever` as `ragkit query`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from mteb.abstasks.task_metadata import TaskMetadata
from mteb.types import PromptType

from ragkit.corpus import document_text
from ragkit.embedding_cache import cached_embeddings
from ragkit.errors import RagkitError
from ragkit.eval.models import RagkitModel
from ragkit.index.faiss_index import build_index, default_search_params, prepare_for_search, resolve_spec
from ragkit.index.retriever import Retriever
from ragkit.index.transform import Transform
from ragkit.progress import progress_bar
from ragkit.retrieval.fusion import FusionMethod, check_fusion, fuse


def document_texts(corpus) -> list[str]:
    """A task's documents as ragkit embeds every document (`document_text`), so that scoring an
    encoder here and scoring an index built by `ragkit index` see the same texts."""
    titles = corpus["title"] if "title" in corpus.column_names else [""] * len(corpus)
    return [document_text(title or "", text) for title, text in zip(titles, corpus["text"], strict=True)]


def query_texts(queries) -> list[str]:
    """A query's text, followed by its own instruction where the task has per-query ones."""
    texts = queries["text"]
    if texts and not isinstance(texts[0], str):
        raise RagkitError("this task's queries are not plain text; ragkit scores text retrieval tasks only")
    if "instruction" in queries.column_names:
        return [f"{t} {i}" if i else t for t, i in zip(texts, queries["instruction"], strict=True)]
    return list(texts)


def top_k_results(
    scores: np.ndarray, positions: np.ndarray, query_ids: list[str], doc_ids: list[str]
) -> dict[str, dict[str, float]]:
    """mteb's result form, {query id: {doc id: score}}, from FAISS's score and position arrays."""
    return {
        qid: {doc_ids[p]: float(s) for s, p in zip(row_scores, row_positions, strict=True) if p >= 0}
        for qid, row_scores, row_positions in zip(query_ids, scores, positions, strict=True)
    }


class DenseSearch:
    """Embed the corpus once (cached across runs), index it with FAISS, search with embedded queries.

    `spec` is a faiss index factory string ("flat", the default, is exact search); `pca` / `dim`
    reduce vectors exactly as `ragkit index --pca/--dim` does. `max_doc_tokens` caps document
    length to bound the cost of big models.
    """

    def __init__(
        self,
        model,
        *,
        spec: str = "flat",
        pca: int | None = None,
        dim: int | None = None,
        max_doc_tokens: int | None = None,
        cache: bool = True,
        show_progress: bool = True,
    ) -> None:
        self.model, self.spec, self.pca, self.dim = model, spec, pca, dim
        self.max_doc_tokens, self.cache, self.show_progress = max_doc_tokens, cache, show_progress
        self.label = model.label
        self.cached_documents = 0  # documents whose vectors came from the cache, in the last index()

    @property
    def mteb_model_meta(self):
        """The model's metadata, as mteb records it with results."""
        return self.model.mteb_model_meta

    def embed_corpus(self, texts: list[str], task_metadata: TaskMetadata | None) -> np.ndarray:
        """The corpus's vectors, from the cache when this model embedded the same texts before."""

        def embed(block: list[str]) -> np.ndarray:
            return self.model.embed(
                block,
                task_metadata=task_metadata,
                prompt_type=PromptType.document,
                max_tokens=self.max_doc_tokens,
                show_progress=False,
            )

        instruction = self.model.instruction(task_metadata, PromptType.document)
        key = f"{self.model.fingerprint()}|doc-instruction={instruction}|max-tokens={self.max_doc_tokens}"
        self.cached_documents = 0
        bar = progress_bar("embedding corpus", enabled=self.show_progress, transient=True)
        with bar:
            task = bar.add_task("corpus", total=len(texts))

            def advance(n: int, hit: bool) -> None:
                self.cached_documents += n if hit else 0
                bar.advance(task, n)

            if not self.cache:
                vectors = embed(texts)
                advance(len(texts), False)
                return vectors
            return cached_embeddings(key, texts, embed, on_block=advance)

    def index(
        self,
        corpus,
        *,
        task_metadata: TaskMetadata,
        hf_split: str,
        hf_subset: str,
        encode_kwargs: dict | None = None,
        num_proc: int | None = None,
        **kwargs: Any,
    ) -> None:
        """Embed the corpus and build the FAISS index (`spec`, `pca`, `dim`) over it."""
        self.doc_ids = list(corpus["id"])
        vectors = self.embed_corpus(document_texts(corpus), task_metadata)
        self.transform = Transform.fit(vectors, pca=self.pca, dim=self.dim)
        reduced = self.transform.apply(vectors)
        factory = resolve_spec(self.spec, len(reduced), self.transform.dim_out)
        self.faiss_index = prepare_for_search(build_index(reduced, factory), default_search_params(factory))

    def search(
        self,
        queries,
        *,
        task_metadata: TaskMetadata,
        hf_split: str,
        hf_subset: str,
        top_k: int,
        encode_kwargs: dict | None = None,
        top_ranked: dict | None = None,
        num_proc: int | None = None,
        **kwargs: Any,
    ) -> dict[str, dict[str, float]]:
        """The top `top_k` documents per query by cosine similarity."""
        vectors = self.model.embed(
            query_texts(queries), task_metadata=task_metadata, prompt_type=PromptType.query
        )
        scores, positions = self.faiss_index.search(
            self.transform.apply(vectors), min(top_k, len(self.doc_ids))
        )
        return top_k_results(scores, positions, list(queries["id"]), self.doc_ids)


class IndexSearch:
    """Search a `ragkit index` directory built from the task's corpus, as `ragkit query` does.

    Documents are split into chunks; a document scores as its best chunk.
    """

    def __init__(
        self,
        retriever: Retriever,
        *,
        chunks_per_document: int = 4,
        mode: str | None = None,
        method: str | None = None,
        weight: float | None = None,
    ) -> None:
        self.retriever = retriever
        self.chunks_per_document = chunks_per_document
        # What is not given is the index's own (its calibrated setting); a bad value fails now.
        self.setting = retriever.resolve(mode, method, weight)
        self.mode = self.setting.mode
        self.doc_ids = retriever.store.doc_ids()  # chunk id -> document id
        self._model = RagkitModel(retriever.encoder, task_instructions=False)
        default = " (the index's default)" if mode is None and method is None and weight is None else ""
        fusion = f" {self.setting.label}" if self.setting.mode == "hybrid" else ""
        self.label = f"index:{retriever.index_dir.name} {self.mode}{fusion}{default}"

    @property
    def mteb_model_meta(self):
        """The index encoder's metadata, as mteb records it with results."""
        return self._model.mteb_model_meta

    def index(
        self, corpus, *, task_metadata: TaskMetadata, hf_split: str, hf_subset: str, **kwargs: Any
    ) -> None:
        """Check that the ragkit index holds the task's corpus (it is not built here)."""
        indexed, wanted = set(self.doc_ids.values()), set(corpus["id"])
        missing = wanted - indexed
        if missing:
            raise RagkitError(
                f"{len(missing)} of the task's {len(wanted)} documents (e.g. {sorted(missing)[0]!r}) "
                f"are not in the index {self.retriever.index_dir}; build it from the task's corpus "
                "(<task>/corpus.jsonl.gz)"
            )

    def search(
        self,
        queries,
        *,
        task_metadata: TaskMetadata,
        hf_split: str,
        hf_subset: str,
        top_k: int,
        **kwargs: Any,
    ) -> dict[str, dict[str, float]]:
        """The index's top `top_k` documents per query in its mode (chunks grouped per document)."""
        fetch = min(top_k * self.chunks_per_document, len(self.doc_ids))
        ranked = self.retriever.ranked(query_texts(queries), fetch, setting=self.setting)
        results = {}
        for qid, ranking in zip(queries["id"], ranked, strict=True):
            best: dict[str, float] = {}
            for p, score in ranking.items():  # best first
                if self.doc_ids[p] not in best:
                    best[self.doc_ids[p]] = score
                    if len(best) == top_k:
                        break
            results[qid] = best
        return results


class FusionSearch:
    """A dense system and a lexical one (BM25) on the same corpus, fused per query (`fuse`).

    Each side retrieves mteb's `top_k`; the fused list is cut to it. Several FusionSearch (one per
    method and weight) may share `runs`: the two sides then index and search each task once.
    """

    def __init__(
        self,
        dense,
        lexical,
        *,
        method: FusionMethod = "rrf",
        weight: float = 0.5,
        runs: dict | None = None,
    ) -> None:
        check_fusion(method, weight)  # a bad method or weight fails now, not after the indexing
        self.dense, self.lexical, self.method, self.weight = dense, lexical, method, weight
        self.runs = {} if runs is None else runs
        self.label = f"{dense.label} + {lexical.label}, {method} {weight:g}"
        self.cached_documents = 0

    @property
    def mteb_model_meta(self):
        """The dense side's metadata, as mteb records it with results."""
        return self.dense.mteb_model_meta

    def index(
        self, corpus, *, task_metadata: TaskMetadata, hf_split: str, hf_subset: str, **kwargs: Any
    ) -> None:
        """Index the corpus on both sides once per task, however many settings are scored."""
        self.key = (task_metadata.name, hf_subset, hf_split, len(corpus))
        if self.key in self.runs:
            return
        for side in (self.dense, self.lexical):
            side.index(corpus, task_metadata=task_metadata, hf_split=hf_split, hf_subset=hf_subset, **kwargs)
        self.runs[self.key] = None  # indexed; searched below
        self.cached_documents = getattr(self.dense, "cached_documents", 0)

    def search(
        self,
        queries,
        *,
        task_metadata: TaskMetadata,
        hf_split: str,
        hf_subset: str,
        top_k: int,
        **kwargs: Any,
    ) -> dict[str, dict[str, float]]:
        """Dense and BM25 runs fused at this system's setting."""
        if self.runs.get(self.key) is None:
            options = {
                "task_metadata": task_metadata,
                "hf_split": hf_split,
                "hf_subset": hf_subset,
                "top_k": top_k,
            }
            self.runs[self.key] = (
                self.dense.search(queries, **options),
                self.lexical.search(queries, **options),
            )
        dense, lexical = self.runs[self.key]
        return {
            qid: dict(
                list(fuse(dense.get(qid, {}), lexical.get(qid, {}), self.method, self.weight).items())[:top_k]
            )
            for qid in queries["id"]
        }
