"""LangChain: ragkit's encoder as `Embeddings`, and a ragkit index as a `BaseRetriever`.

from ragkit.integrations.langchain import RagkitEmbeddings, RagkitRetriever, RagkitVectorStore

retriever = RagkitRetriever.from_index("ragkit-index", k=4)        # the index's own search setting
docs = retriever.invoke("how do plants make energy?")              # langchain Documents
store = InMemoryVectorStore(RagkitEmbeddings())                    # or any vector store
store = RagkitVectorStore("my-index")                               # or ragkit's own, writable
store.add_texts(["Bees dance to tell where flowers are."], ids=["bees"])
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.retrievers import BaseRetriever
from langchain_core.vectorstores import VectorStore
from pydantic import ConfigDict

from ragkit.corpus import Document as RagkitDocument
from ragkit.encoders import Encoder
from ragkit.errors import RagkitError
from ragkit.index import Retriever
from ragkit.integrations._hits import as_encoder, as_retriever, hit_id, hit_metadata
from ragkit.integrations._store import IndexStore


class RagkitEmbeddings(Embeddings):
    """Documents embedded as an index holds them, queries with the encoder's query instruction.

    Args:
        encoder: an `Encoder`, or what to load one from (default: the built-in encoder).
        batch_size: texts per forward pass.
    """

    def __init__(self, encoder: Encoder | str | None = None, *, batch_size: int = 32) -> None:
        self.encoder = as_encoder(encoder)
        self.batch_size = batch_size

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Document vectors, as lists of floats."""
        return self.encoder.encode_documents(texts, batch_size=self.batch_size).tolist()

    def embed_query(self, text: str) -> list[float]:
        """A query vector, with the encoder's query instruction."""
        return self.encoder.encode_queries([text])[0].tolist()


class RagkitRetriever(BaseRetriever):
    """A ragkit index searched as `Retriever.search` does: `k`, `mode` and `filter` as there.

    Each Document's metadata holds the chunk's own metadata plus score, doc_id, path, title,
    chunk_id, start and end; its id is "doc_id#chunk_id".
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    retriever: Retriever
    k: int = 4
    mode: str | None = None  # None: the index's default (`Retriever.search`'s)
    filter: dict | None = None

    @classmethod
    def from_index(cls, index_dir: str, **kwargs: Any) -> RagkitRetriever:
        """Load the index (and its encoder, as it was built)."""
        return cls(retriever=as_retriever(index_dir), **kwargs)

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        hits = self.retriever.search(
            query, k=self.k, filter=self.filter, setting=self.retriever.resolve(self.mode)
        )
        return [Document(page_content=h.text, metadata=hit_metadata(h), id=hit_id(h)) for h in hits]


class RagkitVectorStore(VectorStore):
    """A LangChain `VectorStore` over a ragkit index: `add_texts` / `add_documents` upsert documents by
    id (new ids are uuid4s), `delete` removes them, `similarity_search` finds the best chunk of each of
    the `k` best documents (Document id: the document's; metadata: its own), `as_retriever` comes
    with LangChain. The index is created by the first write and encodes with the index's encoder
    (`embedding` is accepted for LangChain's API; a ragkit index embeds with its own encoder, so pass
    `RagkitEmbeddings` or nothing).

    Args:
        index_dir: where the index lives (created if absent).
        encoder: an `Encoder` or what to load one from (default: the index's, or the built-in one).
        mode: dense, bm25 or hybrid; None: the index's calibrated setting.
    """

    def __init__(
        self,
        index_dir: str = "ragkit-index",
        encoder: Encoder | str | None = None,
        *,
        mode: str | None = None,
        embedding: Embeddings | None = None,
    ) -> None:
        if isinstance(embedding, RagkitEmbeddings) and encoder is None:
            encoder = embedding.encoder
        elif embedding is not None and not isinstance(embedding, RagkitEmbeddings):
            raise RagkitError(
                "a ragkit index embeds with its own encoder: pass `encoder` (or RagkitEmbeddings), "
                f"not {type(embedding).__name__}"
            )
        self.store = IndexStore(index_dir, as_encoder(encoder) if encoder is not None else None, mode)

    @property
    def embeddings(self) -> Embeddings | None:
        """The index's encoder as LangChain `Embeddings`; None with neither index nor encoder."""
        encoder = self.store.encoder
        return RagkitEmbeddings(encoder) if encoder is not None else None

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict] | None = None,
        *,
        ids: Sequence[str | None] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Upsert texts as documents (ids made up where not given); returns their ids."""
        texts = list(texts)
        metadatas = list(metadatas) if metadatas is not None else [{} for _ in texts]
        given = list(ids) if ids is not None else [None] * len(texts)
        if not len(metadatas) == len(given) == len(texts):
            raise RagkitError(
                f"{len(texts)} texts, {len(metadatas)} `metadatas` and {len(given)} `ids`: give one of "
                "each per text"
            )
        for n, metadata in enumerate(metadatas):
            if metadata is not None and not isinstance(metadata, dict):
                raise RagkitError(f"`metadatas`[{n}] is {type(metadata).__name__}; each must be a dict")
        doc_ids = [str(i) if i is not None else str(uuid.uuid4()) for i in given]
        self.store.upsert(
            [
                RagkitDocument(i, t, "", dict(m or {}))
                for i, t, m in zip(doc_ids, texts, metadatas, strict=True)
            ]
        )
        return doc_ids

    def add_documents(self, documents: list[Document], **kwargs: Any) -> list[str]:
        """Upsert LangChain documents by id; returns their ids."""
        ids = kwargs.pop("ids", None) or [d.id for d in documents]
        return self.add_texts(
            [d.page_content for d in documents], [d.metadata for d in documents], ids=ids, **kwargs
        )

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        """Remove the documents with these ids."""
        if ids is None:
            raise RagkitError("delete needs the `ids` of the documents to remove")
        self.store.delete(ids)
        return True

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """The documents with these ids, those found only, in the order asked."""
        return [Document(page_content=text, metadata=meta, id=i) for i, text, meta in self.store.get(ids)]

    def similarity_search_with_score(
        self, query: str, k: int = 4, filter: dict | None = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """The `k` best documents for `query` in the index's default setting, with scores."""
        hits = self.store.search(query, k, filter)
        return [(Document(page_content=h.text, metadata=h.metadata, id=h.doc_id), h.score) for h in hits]

    def similarity_search(
        self, query: str, k: int = 4, filter: dict | None = None, **kwargs: Any
    ) -> list[Document]:
        """The `k` best documents for `query` in the index's default setting."""
        return [doc for doc, _ in self.similarity_search_with_score(query, k, filter, **kwargs)]

    def similarity_search_by_vector(
        self, embedding: list[float], k: int = 4, filter: dict | None = None, **kwargs: Any
    ) -> list[Document]:
        """The `k` nearest documents to a query vector (dense search)."""
        hits = self.store.search(None, k, filter, vector=np.asarray(embedding, dtype=np.float32))
        return [Document(page_content=h.text, metadata=h.metadata, id=h.doc_id) for h in hits]

    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings | None = None,
        metadatas: list[dict] | None = None,
        *,
        ids: list[str] | None = None,
        index_dir: str = "ragkit-index",
        **kwargs: Any,
    ) -> RagkitVectorStore:
        """A store at `index_dir` holding `texts` (created if need be)."""
        store = cls(index_dir, embedding=embedding, **kwargs)
        store.add_texts(texts, metadatas, ids=ids)
        return store
