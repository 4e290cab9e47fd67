"""LlamaIndex adapters against the real llama-index-core: a query engine and a vector index."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("llama_index.core", reason="pip install 'ragkit[llama-index]'")

from llama_index.core import Settings, VectorStoreIndex
from llama_index.core.llms import MockLLM
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import TextNode

from ragkit.integrations.llama_index import RagkitEmbedding, RagkitRetriever

QUESTION = "what is the heat transfer to a blunt body in hypersonic flow"


@pytest.fixture(autouse=True)
def offline_tokenizer(encoder):
    """LlamaIndex counts prompt tokens with tiktoken, which downloads its tables; use ours."""
    previous = Settings._tokenizer
    Settings.tokenizer = encoder.tokenizer.encode
    yield
    Settings._tokenizer = previous


def test_the_retriever_returns_ragkits_hits_as_nodes(retriever):
    nodes = RagkitRetriever(retriever, k=5, mode="bm25").retrieve(QUESTION)
    hits = retriever.search(QUESTION, k=5, mode="bm25")
    assert [n.node.get_content() for n in nodes] == [h.text for h in hits]
    assert [n.score for n in nodes] == [h.score for h in hits]
    assert nodes[0].node.node_id == f"{hits[0].doc_id}#{hits[0].chunk_id}"
    assert nodes[0].node.metadata["path"] == hits[0].path


def test_a_query_engine_answers_from_the_retrieved_nodes(retriever):
    engine = RetrieverQueryEngine.from_args(RagkitRetriever(retriever, k=3, mode="hybrid"), llm=MockLLM())
    response = engine.query(QUESTION)
    hits = retriever.search(QUESTION, k=3, mode="hybrid")
    assert [n.node.node_id for n in response.source_nodes] == [f"{h.doc_id}#{h.chunk_id}" for h in hits]
    assert isinstance(response.response, str)


def test_embedding_in_a_llama_index_vector_index(encoder):
    texts = [
        "heat transfer in hypersonic flow",
        "boundary layer on a flat plate",
        "wing flutter at transonic speed",
    ]
    embed = RagkitEmbedding(encoder, embed_batch_size=2)
    np.testing.assert_allclose(
        embed.get_text_embedding_batch(texts), encoder.encode_documents(texts), atol=1e-6
    )
    np.testing.assert_allclose(
        embed.get_query_embedding(texts[0]), encoder.encode_queries(texts[:1])[0], atol=1e-6
    )
    index = VectorStoreIndex([TextNode(text=t, id_=str(i)) for i, t in enumerate(texts)], embed_model=embed)
    found = index.as_retriever(similarity_top_k=3).retrieve(texts[2])
    expected = encoder.encode_documents(texts) @ encoder.encode_queries(texts[2:3])[0]
    assert [n.node.node_id for n in found] == [str(i) for i in np.argsort(-expected)]
