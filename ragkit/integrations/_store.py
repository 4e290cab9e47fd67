"""A ragkit index as the frameworks' vector stores see one: written document by document, possibly not
there yet, possibly emptied again. The LangChain and LlamaIndex stores are thin layers over it.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from ragkit.corpus import Document
from ragkit.encoders import Encoder
from ragkit.index import Hit, Index, Retriever
from ragkit.index.documents import document_ids
from ragkit.index.filters import compile_filter
from ragkit.index.lock import writer_lock


class IndexStore:
    """Documents in the index at `index_dir`, written with `Index.open` and read with a `Retriever`.

    Args:
        index_dir: the index; created by the first write if it does not exist.
        encoder: an `Encoder` (default: the index's own; for a new index, the built-in encoder).
        mode: how to search (dense, bm25, hybrid); None: the index's calibrated setting.
    """

    def __init__(
        self, index_dir: str | Path, encoder: Encoder | None = None, mode: str | None = None
    ) -> None:
        self.index_dir, self.encoder, self.mode = Path(index_dir), encoder, mode
        self._retriever: Retriever | None = None

    @property
    def retriever(self) -> Retriever | None:
        """The current version of the index, or None while it holds nothing."""
        if not self.index_dir.exists():
            self._close()
            return None
        if self._retriever is None:
            self._retriever = Retriever.load(self.index_dir, encoder=self.encoder)
            self.encoder = self.encoder or self._retriever.encoder
        else:
            self._retriever.refresh()
        return self._retriever

    def upsert(self, documents: Sequence[Document]) -> None:
        """Add the documents, replacing those with the same ids."""
        if documents:
            Index.open(self.index_dir, self.encoder).upsert(list(documents))

    def delete(self, ids: Iterable[str] | str) -> None:
        """Remove documents by id (one id, or a list); ids the index does not hold are ignored.
        Deleting every document removes the index (ragkit's indexes are never empty), and the next
        write creates it again."""
        ids = set(document_ids(ids))
        retriever = self.retriever
        if retriever is None or not ids:
            return
        held = set(retriever.snapshot.store.doc_ids().values())
        if held <= ids:
            self._close()
            with writer_lock(self.index_dir):
                shutil.rmtree(self.index_dir)
            return
        Index.open(self.index_dir, self.encoder).delete(sorted(ids & held))

    def search(
        self, query: str | None, k: int, filter: dict | None = None, vector: np.ndarray | None = None
    ) -> list[Hit]:
        """The best chunk of each of the `k` best documents (a document is found once)."""
        retriever = self.retriever
        if retriever is None:
            return []
        vectors = None if vector is None else np.asarray(vector, dtype=np.float32).reshape(1, -1)
        setting = retriever.resolve(self.mode) if vectors is None else retriever.resolve("dense")
        best: dict[str, Hit] = {}
        depth = k
        while True:
            hits = retriever.search(
                query or "",
                k=depth,
                filter=filter,
                setting=setting,
                query_vectors=vectors,
            )
            for hit in hits:
                best.setdefault(hit.doc_id, hit)
            if len(best) >= k or len(hits) < depth:
                return list(best.values())[:k]
            best.clear()
            depth *= 4

    def get(self, ids: Sequence[str]) -> list[tuple[str, str, dict]]:
        """(id, text, metadata) of the documents held, in the order asked; a text is put back together
        from its chunks (by their character offsets)."""
        retriever = self.retriever
        if retriever is None or not ids:
            return []
        store = retriever.snapshot.store
        wanted = [str(i) for i in ids]
        chunks: dict[str, list[dict]] = {}
        for chunk in store.chunks_at(store.ids_where(*compile_filter({"doc_id": {"$in": wanted}}))):
            chunks.setdefault(chunk["doc_id"], []).append(chunk)
        return [(i, _text(chunks[i]), chunks[i][0]["metadata"]) for i in wanted if i in chunks]

    def ids_where(self, filter: dict) -> list[str]:
        """The ids of the documents a metadata filter keeps."""
        retriever = self.retriever
        if retriever is None:
            return []
        store = retriever.snapshot.store
        chunk_ids = store.ids_where(*compile_filter(filter))
        return sorted({c["doc_id"] for c in store.chunks_at(chunk_ids)})

    def _close(self) -> None:
        if self._retriever is not None:
            self._retriever.close()
            self._retriever = None


def _text(chunks: list[dict]) -> str:
    """A document's text put back together from its chunks, by their character offsets."""
    text = ""
    for chunk in sorted(chunks, key=lambda c: c["start"]):
        if chunk["start"] > len(text):
            text += " " * (chunk["start"] - len(text))  # a gap between chunks (whitespace)
        text = text[: chunk["start"]] + chunk["text"]
    return text
