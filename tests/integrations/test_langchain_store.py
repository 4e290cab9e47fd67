"""The writable LangChain store, through LangChain's own standard vector store tests."""

from __future__ import annotations

import pytest

pytest.importorskip("langchain_core", reason="pip install 'ragkit[langchain]'")
pytest.importorskip("langchain_tests", reason="pip install langchain-tests")

from helpers import tiny_encoder
from langchain_tests.integration_tests import VectorStoreIntegrationTests

from ragkit import RagkitError
from ragkit.integrations.langchain import RagkitEmbeddings, RagkitVectorStore


@pytest.fixture(scope="module")
def exact_encoder():
    # No query instruction: a query is encoded as the same text stored as a document would be, so an
    # exact match scores 1, the property LangChain's tests rely on (they were written for a fake
    # embedding that maps equal texts to equal vectors).
    return tiny_encoder("llama")


class TestRagkitVectorStoreStandard(VectorStoreIntegrationTests):
    @pytest.fixture
    def vectorstore(self, exact_encoder, tmp_path):
        return RagkitVectorStore(str(tmp_path / "index"), exact_encoder, mode="dense")


def test_the_store_is_a_retriever_and_filters_by_metadata(exact_encoder, tmp_path):
    store = RagkitVectorStore(str(tmp_path / "index"), exact_encoder, mode="dense")
    texts = [
        "Bees dance to show where flowers are.",
        "Volcanoes erupt molten rock.",
        "Bread rises with yeast.",
    ]
    ids = store.add_texts(
        texts, [{"topic": "bees"}, {"topic": "earth"}, {"topic": "food"}], ids=["b", "v", "y"]
    )
    assert ids == ["b", "v", "y"]
    retriever = store.as_retriever(search_kwargs={"k": 1})
    assert retriever.invoke(texts[1])[0].id == "v"
    found = store.similarity_search(texts[1], k=3, filter={"topic": {"$in": ["bees", "food"]}})
    assert {d.id for d in found} == {"b", "y"}
    store.delete(["b", "v", "y"])
    assert store.similarity_search("anything", k=3) == [] and not (tmp_path / "index").exists()
    store.add_texts(["Back again."], ids=["again"])  # the next write creates the index again
    assert [d.id for d in store.similarity_search("Back again.", k=1)] == ["again"]


def test_a_foreign_embedding_is_refused_in_one_line(tmp_path):
    from langchain_core.embeddings import DeterministicFakeEmbedding

    with pytest.raises(RagkitError, match="embeds with its own encoder"):
        RagkitVectorStore(str(tmp_path), embedding=DeterministicFakeEmbedding(size=6))
    store = RagkitVectorStore(str(tmp_path), embedding=RagkitEmbeddings(tiny_encoder()))
    assert store.store.encoder is not None


def test_delete_takes_one_id_whole_and_bad_writes_are_one_line_errors(exact_encoder, tmp_path):
    store = RagkitVectorStore(str(tmp_path / "index"), exact_encoder, mode="dense")
    store.add_texts(["alpha", "bees", "honey", "combs"], ids=["abc", "a", "b", "c"])
    store.delete("abc")  # one id, not its letters
    assert [d.id for d in store.get_by_ids(["abc", "a", "b", "c"])] == ["a", "b", "c"]
    with pytest.raises(RagkitError, match=r"`metadatas`\[0\] is str; each must be a dict"):
        store.add_texts(["x"], ["not a dict"])
    with pytest.raises(RagkitError, match="2 texts, 1 `metadatas` and 2 `ids`"):
        store.add_texts(["x", "y"], [{}], ids=["x", "y"])
    with pytest.raises(RagkitError, match="metadata is not JSON"):
        store.add_texts(["x"], [{"score": float("nan")}])
