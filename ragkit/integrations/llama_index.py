"""LlamaIndex: ragkit's encoder as a `BaseEmbedding`, and a ragkit index as a `BaseRetriever`.

from ragkit.integrations.llama_index import RagkitEmbedding, RagkitRetriever

retriever = RagkitRetriever.from_index("ragkit-index", k=4)
engine = RetrieverQueryEngine.from_args(retriever, llm=llm)       # any LLM
index = VectorStoreIndex(nodes, embed_model=RagkitEmbedding())     # or ragkit's vectors in theirs
"""

from __future__ import annotations

from typing import Any

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.embeddings import BaseEmbedding
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
from pydantic import PrivateAttr

from ragkit.encoders import Encoder
from ragkit.index import Retriever
from ragkit.integrations._hits import as_encoder, as_retriever, hit_id, hit_metadata


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
        hits = self.retriever.search(query_bundle.query_str, k=self.k, filter=self.filter, mode=self.mode)
        return [
            NodeWithScore(node=TextNode(text=h.text, id_=hit_id(h), metadata=hit_metadata(h)), score=h.score)
            for h in hits
        ]
