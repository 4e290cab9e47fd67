"""LangChain: ragkit's encoder as `Embeddings`, and a ragkit index as a `BaseRetriever`.

from ragkit.integrations.langchain import RagkitEmbeddings, RagkitRetriever

retriever = RagkitRetriever.from_index("ragkit-index", k=4)        # the index's calibrated setting, as `ragkit query`
docs = retriever.invoke("how do plants make energy?")              # langchain Documents
store = InMemoryVectorStore(RagkitEmbeddings())                    # or any vector store
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from ragkit.encoders import Encoder
from ragkit.index import Retriever
from ragkit.integrations._hits import as_encoder, as_retriever, hit_id, hit_metadata


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
        return self.encoder.encode_documents(texts, batch_size=self.batch_size).tolist()

    def embed_query(self, text: str) -> list[float]:
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
        hits = self.retriever.search(query, k=self.k, filter=self.filter, mode=self.mode)
        return [Document(page_content=h.text, metadata=hit_metadata(h), id=hit_id(h)) for h in hits]
