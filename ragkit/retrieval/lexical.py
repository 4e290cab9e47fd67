"""BM25 over a list of texts (bm25s), saved as files: the lexical half of hybrid search.

One implementation for the index (`bm25-<generation>/` beside the FAISS index, rebuilt with each
generation, each text keyed by its chunk id) and for `ragkit eval --bm25`. The settings are those of mteb's
`baseline/bm25s` for English: Lucene BM25, k1 1.5, b 0.75, English stop words, Snowball stemmer.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ragkit.errors import RagkitError

SETTINGS = {
    "kind": "bm25s",
    "method": "lucene",
    "k1": 1.5,
    "b": 0.75,
    "stopwords": "en",
    "stemmer": "english",
}


class LexicalIndex:
    """`search` returns, per query, {id: BM25 score} for its top k texts with a score above 0.

    Each text has an id (its chunk id in an index; its position by default). Safe to search from many
    threads: scoring only reads arrays, and the stemmer (not thread-safe) is used under a lock.
    """

    def __init__(self, retriever, settings: dict = SETTINGS, ids: np.ndarray | None = None) -> None:
        import Stemmer

        self.retriever, self.settings = retriever, settings
        self.ids = np.arange(len(self)) if ids is None else np.asarray(ids, dtype=np.int64)
        self.stemmer = Stemmer.Stemmer(settings["stemmer"])
        self._lock = threading.Lock()

    @classmethod
    def build(
        cls, texts: Sequence[str], settings: dict = SETTINGS, ids: np.ndarray | None = None
    ) -> LexicalIndex:
        """`ids`: one per text, ascending (default: positions)."""
        bm25s = import_bm25s()
        retriever = bm25s.BM25(k1=settings["k1"], b=settings["b"], method=settings["method"])
        index = cls(retriever, settings, np.zeros(0) if ids is None else ids)
        tokens = index._tokenize(list(texts), return_ids=True)
        empty = not tokens.vocab  # only stop words (texts "a", "the"): bm25s cannot index no vocabulary
        if empty:
            tokens.vocab[""] = 0  # a token no query has: every score is 0
        with np.errstate(invalid="ignore" if empty else "warn"):  # its average length is 0
            index.retriever.index(tokens, show_progress=False)
        if ids is None:
            index.ids = np.arange(len(index))
        return index

    def __len__(self) -> int:
        return int(self.retriever.scores["num_docs"])

    def search(
        self, queries: Sequence[str], k: int, allowed: np.ndarray | None = None
    ) -> list[dict[int, float]]:
        """`allowed` (sorted ids) restricts the ranking to those texts (a search filter)."""
        results: list[dict[int, float]] = []
        vocab = self.retriever.vocab_dict
        for words in self._tokenize(list(queries), return_ids=False):
            known = [w for w in words if w in vocab]
            if not known:  # no query word occurs in the texts: nothing to rank
                results.append({})
                continue
            scores = self.retriever.get_scores(known)
            rows = np.arange(len(scores)) if allowed is None else self._rows(allowed)
            scores = scores[rows]
            n = min(k, len(scores))
            if n == 0:
                results.append({})
                continue
            top = np.argpartition(-scores, n - 1)[:n] if n < len(scores) else np.arange(len(scores))
            top = top[np.argsort(-scores[top], kind="stable")]
            results.append({int(self.ids[rows[i]]): float(scores[i]) for i in top if scores[i] > 0})
        return results

    def scores(self, query: str) -> np.ndarray:
        """The BM25 score of every text for `query`, in the order the texts were given (0 for none)."""
        vocab = self.retriever.vocab_dict
        known = [w for w in self._tokenize([query], return_ids=False)[0] if w in vocab]
        if not known:
            return np.zeros(len(self), dtype=np.float32)
        return np.asarray(self.retriever.get_scores(known), dtype=np.float32)

    def _rows(self, ids: np.ndarray) -> np.ndarray:
        """The rows of the texts with these ids (ids it does not hold are left out)."""
        return np.flatnonzero(np.isin(self.ids, ids))

    def save(self, directory: str | Path) -> None:
        """Write the BM25 index, its settings and chunk ids into `directory`."""
        directory = Path(directory)
        self.retriever.save(str(directory), show_progress=False)
        (directory / "settings.json").write_text(json.dumps(self.settings) + "\n")
        np.save(directory / "ids.npy", self.ids)

    @classmethod
    def load(cls, directory: str | Path) -> LexicalIndex:
        """Read what `save` wrote; a damaged or missing part is a one-line error."""
        bm25s = import_bm25s()
        directory = Path(directory)
        try:
            settings = json.loads((directory / "settings.json").read_text())
            retriever = bm25s.BM25.load(str(directory), show_progress=False, verbosity=0)
            ids = np.load(directory / "ids.npy")
        except (OSError, ValueError, KeyError) as e:
            raise RagkitError(
                f"the BM25 part of the index ({directory}) is missing or damaged; the next update of "
                "the index rebuilds it (dense search works meanwhile)"
            ) from e
        return cls(retriever, settings, ids)

    def _tokenize(self, texts: list[str], return_ids: bool):
        bm25s = import_bm25s()
        with self._lock:
            return bm25s.tokenize(
                texts,
                stopwords=self.settings["stopwords"],
                stemmer=self.stemmer,
                return_ids=return_ids,
                show_progress=False,
            )


def import_bm25s():
    """bm25s, imported with JAX hidden from it.

    Where JAX is installed, bm25s' import runs a JAX top-k to probe it; on a GPU machine that starts
    JAX's CUDA backend, which takes 75% of the GPU's memory in every process that builds or loads an
    index, and torch then runs out of memory (seen on an H200: every worker but one). ragkit only
    scores with bm25s' NumPy path (`get_scores`), so bm25s never needs JAX; JAX itself stays
    importable, and untouched, for the rest of the process.
    """
    with _BM25S_IMPORT:  # two first builds at once must not both hide and restore JAX
        if "bm25s" in sys.modules:
            return sys.modules["bm25s"]
        hidden = {name: sys.modules.pop(name) for name in list(sys.modules) if name.split(".")[0] == "jax"}
        # None in sys.modules: `import jax.lax` in bm25s raises ImportError, and it falls back to NumPy
        sys.modules["jax"] = None  # type: ignore[assignment]  # typeshed's sys.modules takes no None
        try:
            import bm25s
        finally:
            del sys.modules["jax"]
            sys.modules.update(hidden)
        return bm25s


_BM25S_IMPORT = threading.Lock()
