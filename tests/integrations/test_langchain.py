"""LangChain adapters against the real langchain-core: a retrieval chain and a vector store."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("langchain_core", reason="pip install 'ragkit[langchain]'")

from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda, RunnablePassthrough
from langchain_core.vectorstores import InMemoryVectorStore

from ragkit.integrations.langchain import RagkitEmbeddings, RagkitRetriever

QUESTION = "what is the heat transfer to a blunt body in hypersonic flow"


def test_the_retriever_returns_ragkits_hits_as_documents(retriever):
    lc = RagkitRetriever(retriever=retriever, k=5, mode="bm25")
    docs = lc.invoke(QUESTION)
    hits = retriever.search(QUESTION, k=5, mode="bm25")
    assert [d.page_content for d in docs] == [h.text for h in hits]
    assert [d.id for d in docs] == [f"{h.doc_id}#{h.chunk_id}" for h in hits]
    assert docs[0].metadata["score"] == hits[0].score and docs[0].metadata["n"] == hits[0].metadata["n"]


def test_a_filter_reaches_the_index(retriever):
    docs = RagkitRetriever(retriever=retriever, k=3, mode="bm25", filter={"n": {"$lt": 50}}).invoke(QUESTION)
    assert len(docs) == 3 and all(d.metadata["n"] < 50 for d in docs)


def test_a_rag_chain_puts_the_retrieved_chunks_into_the_prompt(retriever):
    prompt = ChatPromptTemplate.from_template("Answer from the context.\n{context}\nQuestion: {question}")
    echo_llm = RunnableLambda(lambda value: value.to_string())  # an LLM that repeats its prompt
    chain = (
        {
            "context": RagkitRetriever(retriever=retriever, k=2, mode="bm25")
            | (lambda docs: "\n\n".join(d.page_content for d in docs)),
            "question": RunnablePassthrough(),
        }
        | prompt
        | echo_llm
    )
    answer = chain.invoke(QUESTION)
    top = retriever.search(QUESTION, k=2, mode="bm25")
    assert all(h.text in answer for h in top) and answer.endswith(f"Question: {QUESTION}")


def test_embeddings_in_a_langchain_vector_store(encoder):
    texts = [
        "heat transfer in hypersonic flow",
        "boundary layer on a flat plate",
        "wing flutter at transonic speed",
    ]
    embeddings = RagkitEmbeddings(encoder)
    np.testing.assert_allclose(embeddings.embed_documents(texts), encoder.encode_documents(texts), atol=1e-6)
    np.testing.assert_allclose(
        embeddings.embed_query(texts[0]), encoder.encode_queries(texts[:1])[0], atol=1e-6
    )
    store = InMemoryVectorStore(embeddings)
    store.add_texts(texts)
    found = store.similarity_search_with_score(texts[1], k=3)
    expected = encoder.encode_documents(texts) @ encoder.encode_queries(texts[1:2])[0]
    assert [d.page_content for d, _ in found] == [texts[i] for i in np.argsort(-expected)]
