"""BM25 (bm25s) as an mteb `SearchProtocol`: the lexical reference every encoder should beat.

The settings are those of mteb's `baseline/bm25s` for English (Lucene BM25, k1 1.5, b 0.75,
English stop words, Snowball stemmer, title and text on separate lines), so scores match that
baseline; this version runs quietly under ragkit's own progress output.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from mteb.models.model_meta import ModelMeta

from ragkit.eval.search import document_texts, query_texts


class BM25Search:
    label = "bm25"
    cached_documents = 0

    def __init__(self, k1: float = 1.5, b: float = 0.75) -> None:
        import Stemmer

        self.k1, self.b = k1, b
        self.stemmer = Stemmer.Stemmer("english")
        self.mteb_model_meta = ModelMeta.create_empty(
            {
                "name": "ragkit/bm25s",
                "revision": f"k1-{k1}_b-{b}",
                "framework": ["NumPy"],
                "languages": ["eng-Latn"],
            }
        )

    def index(self, corpus, *, task_metadata, hf_split: str, hf_subset: str, **kwargs: Any) -> None:
        import bm25s

        texts = document_texts(corpus)
        self.doc_ids = list(corpus["id"])
        tokens = bm25s.tokenize(texts, stopwords="en", stemmer=self.stemmer, show_progress=False)
        self.retriever = bm25s.BM25(k1=self.k1, b=self.b, method="lucene")
        self.retriever.index(tokens, show_progress=False)
        self.vocab = tokens.vocab

    def search(self, queries, *, task_metadata, hf_split: str, hf_subset: str, top_k: int, **kwargs: Any):
        import bm25s

        tokens = bm25s.tokenize(
            query_texts(queries), stopwords="en", stemmer=self.stemmer, return_ids=False, show_progress=False
        )
        k = min(top_k, len(self.doc_ids))
        results = {}
        for qid, words in zip(queries["id"], tokens, strict=True):
            known = [w for w in words if w in self.vocab]
            if not known:  # no query term occurs in the corpus: nothing to rank
                results[qid] = {}
                continue
            scores = self.retriever.get_scores(known)
            top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
            top = top[np.argsort(-scores[top], kind="stable")]
            results[qid] = {self.doc_ids[i]: float(scores[i]) for i in top if scores[i] > 0}
        return results
