"""LlamaIndex: ragkit's encoder as a `BaseEmbedding`, a ragkit index as a `BaseRetriever`, and as a
writable vector store.

from ragkit.integrations.llama_index import RagkitEmbedding, RagkitRetriever, RagkitVectorStore

retriever = RagkitRetriever.from_index("ragkit-index", k=4)
engine = RetrieverQueryEngine.from_args(retriever, llm=llm)       # any LLM
index = VectorStoreIndex(nodes, embed_model=RagkitEmbedding())     # or ragkit's vectors in theirs
store = RagkitVectorStore("my-index")                               # or theirs in ragkit's index:
index = VectorStoreIndex.from_vector_store(store, embed_model=RagkitEmbedding())
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.embeddings import BaseEmbedding
from llama_index.core.schema import BaseNode, MetadataMode, NodeWithScore, QueryBundle, TextNode
from llama_index.core.vector_stores.types import (
    BasePydanticVectorStore,
    FilterOperator,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryResult,
)
from pydantic import PrivateAttr

from ragkit.corpus import Document as RagkitDocument
from ragkit.encoders import Encoder
from ragkit.errors import RagkitError
from ragkit.index import Retriever
from ragkit.integrations._hits import as_encoder, as_retriever, hit_id, hit_metadata
from ragkit.integrations._store import IndexStore


class RagkitEmbedding(BaseEmbedding):
    """Texts embedded as an index holds them, queries with the encoder's query instruction.

    Args:
        encoder: an `Encoder`, or what to load one from (default: the built-in encoder).
        embed_batch_size: texts per forward pass (LlamaIndex's own setting).
    """

    _encoder: Encoder = PrivateAttr()

    def __init__(self, encoder: Encoder | str | None = None, **kwargs: Any) -> None:
        loaded = as_encoder(encoder)
        super().__init__(model_name=kwargs.pop("model_name", loaded.config.source or "ragkit"), **kwargs)
        self._encoder = loaded

    @classmethod
    def class_name(cls) -> str:
        """LlamaIndex's name for this class."""
        return "RagkitEmbedding"

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._encoder.encode_queries([query])[0].tolist()

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._get_text_embeddings([text])[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._encoder.encode_documents(texts, batch_size=self.embed_batch_size).tolist()

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)

    async def _aget_text_embedding(self, text: str) -> list[float]:
        return self._get_text_embedding(text)


class RagkitRetriever(BaseRetriever):
    """A ragkit index searched as `Retriever.search` does: `k`, `mode` and `filter` as there.

    Each node's metadata holds the chunk's own metadata plus score, doc_id, path, title, chunk_id,
    start and end; its id is "doc_id#chunk_id".
    """

    def __init__(
        self,
        retriever: Retriever,
        *,
        k: int = 4,
        mode: str | None = None,
        filter: dict | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.retriever, self.k, self.mode, self.filter = retriever, k, mode, filter

    @classmethod
    def from_index(cls, index_dir: str, **kwargs: Any) -> RagkitRetriever:
        """Load the index (and its encoder, as it was built)."""
        return cls(as_retriever(index_dir), **kwargs)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits = self.retriever.search(
            query_bundle.query_str, k=self.k, filter=self.filter, setting=self.retriever.resolve(self.mode)
        )
        return [
            NodeWithScore(node=TextNode(text=h.text, id_=hit_id(h), metadata=hit_metadata(h)), score=h.score)
            for h in hits
        ]


# LlamaIndex filter operators -> ragkit's (ragkit/index/filters.py).
_OPERATORS = {
    FilterOperator.EQ: "$eq",
    FilterOperator.NE: "$ne",
    FilterOperator.GT: "$gt",
    FilterOperator.GTE: "$gte",
    FilterOperator.LT: "$lt",
    FilterOperator.LTE: "$lte",
    FilterOperator.IN: "$in",
    FilterOperator.NIN: "$nin",
}


class RagkitVectorStore(BasePydanticVectorStore):
    """A LlamaIndex vector store over a ragkit index: nodes are upserted by node id (their text is
    embedded by the index's encoder, which is why LlamaIndex should embed with `RagkitEmbedding`),
    `delete(ref_doc_id)` removes a source document's nodes, and `query` searches by the query's
    vector when it has the index's width (else by its text, in the store's `mode`).

    Args:
        index_dir: where the index lives (created by the first write if absent).
        encoder: an `Encoder` or what to load one from (default: the index's, or the built-in one).
        mode: dense, bm25 or hybrid for text queries; None: the index's calibrated setting.
    """

    stores_text: bool = True
    flat_metadata: bool = False
    _store: IndexStore = PrivateAttr()

    def __init__(
        self,
        index_dir: str = "ragkit-index",
        encoder: Encoder | str | None = None,
        *,
        mode: str | None = None,
    ) -> None:
        super().__init__()  # type: ignore[call-arg]  # stores_text: this class gives its default
        self._store = IndexStore(index_dir, as_encoder(encoder) if encoder is not None else None, mode)

    @classmethod
    def class_name(cls) -> str:
        """LlamaIndex's name for this class."""
        return "RagkitVectorStore"

    @property
    def client(self) -> IndexStore:
        """The ragkit index underneath."""
        return self._store

    def add(self, nodes: Sequence[BaseNode], **kwargs: Any) -> list[str]:
        """Upsert nodes as documents by node id (the source document's id kept as metadata)."""
        documents = [
            RagkitDocument(
                node.node_id,
                node.get_content(metadata_mode=MetadataMode.NONE),
                "",
                {**node.metadata, "ref_doc_id": node.ref_doc_id} if node.ref_doc_id else dict(node.metadata),
            )
            for node in nodes
        ]
        self._store.upsert(documents)
        return [node.node_id for node in nodes]

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Remove every node of the source document `ref_doc_id`."""
        self._store.delete(self._store.ids_where({"ref_doc_id": {"$eq": ref_doc_id}}))

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """The top nodes for a query string or vector, filtered by metadata and document ids."""
        filter = _ragkit_filter(query.filters)
        if query.doc_ids:
            filter = (
                {"$and": [filter, {"ref_doc_id": {"$in": list(query.doc_ids)}}]}
                if filter
                else {"ref_doc_id": {"$in": list(query.doc_ids)}}
            )
        vector = query.query_embedding
        encoder = self._store.encoder
        use_vector = vector is not None and (encoder is None or len(vector) == encoder.dim)
        hits = self._store.search(
            query.query_str, query.similarity_top_k, filter, vector=np.asarray(vector) if use_vector else None
        )
        nodes = [TextNode(text=h.text, id_=h.doc_id, metadata=dict(h.metadata)) for h in hits]
        return VectorStoreQueryResult(
            nodes=nodes, similarities=[h.score for h in hits], ids=[h.doc_id for h in hits]
        )


def _ragkit_filter(filters: MetadataFilters | None) -> dict | None:
    """LlamaIndex's metadata filters as a ragkit filter (comparisons, in/nin, and/or)."""
    if filters is None or not filters.filters:
        return None
    parts = []
    for item in filters.filters:
        if isinstance(item, MetadataFilters):
            parts.append(_ragkit_filter(item))
        elif item.operator in _OPERATORS:
            parts.append({item.key: {_OPERATORS[item.operator]: item.value}})
        else:
            raise RagkitError(f"filter operator {item.operator.value!r} is not supported by ragkit's index")
    condition = getattr(filters.condition, "value", "and") or "and"
    return parts[0] if len(parts) == 1 else {f"${condition}": parts}
