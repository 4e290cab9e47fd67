"""Reranking: a cross-encoder reads each (query, chunk) pair of the top hits and orders them again.

A cross-encoder attends across query and passage together, so it ranks more precisely than either
vector or BM25 search, at the cost of one forward pass per pair: it reorders the top `top_n` hits of
a search, not the index. Any sentence-transformers `CrossEncoder` works (a local directory or a Hub
id, e.g. "cross-encoder/ms-marco-MiniLM-L6-v2"); none ships with ragkit, as no small cross-encoder
is packaged on PyPI. Needs `pip install ragkit[rerank]` (sentence-transformers).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

from ragkit.errors import RagkitError, first_line

if TYPE_CHECKING:
    from ragkit.index.retriever import Hit

RERANK_TOP = 50  # hits the cross-encoder reads per query, by default


class CrossEncoderLike(Protocol):
    """What reranking needs of a model: sentence-transformers' `CrossEncoder.predict`."""

    def predict(self, sentences: list[tuple[str, str]], **kwargs: Any) -> Any:
        """A relevance score per (query, passage) pair, higher is better."""


_loaded: dict[str, CrossEncoderLike] = {}
_lock = threading.Lock()


def load_reranker(model: str | CrossEncoderLike) -> CrossEncoderLike:
    """A `CrossEncoder` for `model` (a path or Hub id, loaded once per process), or `model` itself."""
    if not isinstance(model, str):
        return model
    if not model.strip():
        raise RagkitError("`rerank` is empty; give a cross-encoder's directory or Hub id")
    with _lock:
        if model not in _loaded:
            try:
                from sentence_transformers import CrossEncoder
            except ImportError as e:
                raise RagkitError(
                    "reranking needs sentence-transformers: pip install 'ragkit[rerank]'"
                ) from e
            try:
                check_cross_encoder(model)
                _loaded[model] = CrossEncoder(model)
            except (OSError, ValueError) as e:
                raise RagkitError(
                    f"could not load the cross-encoder `rerank` {model!r} ({first_line(e)}); give a local "
                    "directory or a Hub id of a sentence-transformers CrossEncoder"
                ) from e
        return _loaded[model]


def check_cross_encoder(model: str) -> None:
    """Refuse, before loading weights, a model that is not a cross-encoder: one that scores a pair
    with a sequence-classification head of one output. A causal LM or an embedding model would load
    with a new, random head and reorder hits at random."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model)
    architectures = config.architectures or []
    if not any(a.endswith("ForSequenceClassification") for a in architectures) or config.num_labels != 1:
        kind = ", ".join(architectures) or config.model_type
        raise RagkitError(
            f"`rerank` {model!r} is not a cross-encoder ({kind} with {config.num_labels} outputs; a "
            "cross-encoder is a sequence-classification model with one output, e.g. "
            "cross-encoder/ms-marco-MiniLM-L6-v2)"
        )


def rerank(
    reranker: CrossEncoderLike, query: str, hits: Sequence[Hit], k: int, batch_size: int = 32
) -> list[Hit]:
    """The best `k` of `hits` by the cross-encoder's score of (query, hit text), best first; each
    hit's `score` becomes that score and `retrieval_score` keeps the search's."""
    if not hits:
        return []
    pairs = [(query, hit.text) for hit in hits]
    scores = [float(s) for s in reranker.predict(pairs, batch_size=batch_size, show_progress_bar=False)]
    order = sorted(range(len(hits)), key=lambda i: -scores[i])[:k]
    return [replace(hits[i], score=scores[i], retrieval_score=hits[i].score) for i in order]
