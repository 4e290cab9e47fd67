"""BM25 (bm25s) as an mteb `SearchProtocol`: the lexical reference every encoder should beat.

The BM25 is an index's (ragkit/retrieval/lexical.py), with the settings of mteb's `baseline/bm25s` for
English, on the texts every ragkit encoder sees (title and text on separate lines), so scores match
that baseline; it runs quietly under ragkit's own progress output.
"""

from __future__ import annotations

from typing import Any

from mteb.models.model_meta import ModelMeta

from ragkit.eval.search import document_texts, query_texts
from ragkit.retrieval.lexical import SETTINGS, LexicalIndex


class BM25Search:
    """BM25 (bm25s, ragkit's lexical index) as an mteb search model: the lexical reference in every table."""

    label = "bm25"
    cached_documents = 0

    def __init__(self, k1: float = 1.5, b: float = 0.75) -> None:
        self.settings = {**SETTINGS, "k1": k1, "b": b}
        self.mteb_model_meta = ModelMeta.create_empty(
            {
                "name": "ragkit/bm25s",
                "revision": f"k1-{k1}_b-{b}",
                "framework": ["NumPy"],
                "languages": ["eng-Latn"],
            }
        )

    def index(self, corpus, *, task_metadata, hf_split: str, hf_subset: str, **kwargs: Any) -> None:
        """Build BM25 over the task's corpus (title and text, as ragkit indexes documents)."""
        self.doc_ids = list(corpus["id"])
        self.lexical = LexicalIndex.build(document_texts(corpus), self.settings)

    def search(self, queries, *, task_metadata, hf_split: str, hf_subset: str, top_k: int, **kwargs: Any):
        """The top `top_k` documents per query with their BM25 scores."""
        found = self.lexical.search(query_texts(queries), top_k)
        return {
            qid: {self.doc_ids[i]: score for i, score in hits.items()}
            for qid, hits in zip(queries["id"], found, strict=True)
        }
