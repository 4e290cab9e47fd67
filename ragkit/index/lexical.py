"""BM25 over a list of texts (bm25s), saved as files: the lexical half of hybrid search.

One implementation for the index (`bm25/` beside `index.faiss`, rebuilt with it at every build, so
updates and the atomic swap cover it) and for `ragkit eval --bm25`. The settings are those of mteb's
`baseline/bm25s` for English: Lucene BM25, k1 1.5, b 0.75, English stop words, Snowball stemmer.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ragkit.errors import RagkitError

LEXICAL_DIR = "bm25"
SETTINGS = {
    "kind": "bm25s",
    "method": "lucene",
    "k1": 1.5,
    "b": 0.75,
    "stopwords": "en",
    "stemmer": "english",
}


class LexicalIndex:
    """`search` returns, per query, {position: BM25 score} for its top k texts with a score above 0.

    Safe to search from many threads: scoring only reads arrays, and the stemmer (not thread-safe)
    is used under a lock.
    """

    def __init__(self, retriever, settings: dict = SETTINGS) -> None:
        import Stemmer

        self.retriever, self.settings = retriever, settings
        self.stemmer = Stemmer.Stemmer(settings["stemmer"])
        self._lock = threading.Lock()

    @classmethod
    def build(cls, texts: Sequence[str], settings: dict = SETTINGS) -> LexicalIndex:
        import bm25s

        index = cls(bm25s.BM25(k1=settings["k1"], b=settings["b"], method=settings["method"]), settings)
        tokens = index._tokenize(list(texts), return_ids=True)
        index.retriever.index(tokens, show_progress=False)
        return index

    def __len__(self) -> int:
        return int(self.retriever.scores["num_docs"])

    def search(
        self, queries: Sequence[str], k: int, allowed: np.ndarray | None = None
    ) -> list[dict[int, float]]:
        """`allowed` (sorted positions) restricts the ranking to those texts (a search filter)."""
        results = []
        vocab = self.retriever.vocab_dict
        for words in self._tokenize(list(queries), return_ids=False):
            known = [w for w in words if w in vocab]
            if not known:  # no query word occurs in the texts: nothing to rank
                results.append({})
                continue
            scores = self.retriever.get_scores(known)
            ids = np.arange(len(scores)) if allowed is None else allowed
            scores = scores[ids]
            n = min(k, len(scores))
            if n == 0:
                results.append({})
                continue
            top = np.argpartition(-scores, n - 1)[:n] if n < len(scores) else np.arange(len(scores))
            top = top[np.argsort(-scores[top], kind="stable")]
            results.append({int(ids[i]): float(scores[i]) for i in top if scores[i] > 0})
        return results

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        self.retriever.save(str(directory), show_progress=False)
        (directory / "settings.json").write_text(json.dumps(self.settings) + "\n")

    @classmethod
    def load(cls, directory: str | Path) -> LexicalIndex:
        import bm25s

        directory = Path(directory)
        try:
            settings = json.loads((directory / "settings.json").read_text())
            retriever = bm25s.BM25.load(str(directory), show_progress=False, verbosity=0)
        except (OSError, ValueError, KeyError) as e:
            raise RagkitError(
                f"the BM25 part of the index ({directory}) is missing or damaged; run `ragkit index` "
                "again to rebuild it"
            ) from e
        return cls(retriever, settings)

    def _tokenize(self, texts: list[str], return_ids: bool):
        import bm25s

        with self._lock:
            return bm25s.tokenize(
                texts,
                stopwords=self.settings["stopwords"],
                stemmer=self.stemmer,
                return_ids=return_ids,
                show_progress=False,
            )
