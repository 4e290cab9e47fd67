"""The writable LlamaIndex store, driven by LlamaIndex's own VectorStoreIndex."""

from __future__ import annotations

import pytest

pytest.importorskip("llama_index.core", reason="pip install 'ragkit[llama-index]'")

from helpers import tiny_encoder
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.vector_stores.types import FilterOperator, MetadataFilter, MetadataFilters

from ragkit.integrations.llama_index import RagkitEmbedding, RagkitVectorStore

TEXTS = {
    "bees": "Bees dance to show where flowers are.",
    "volcano": "Volcanoes erupt molten rock.",
    "bread": "Bread rises with yeast.",
}


@pytest.fixture
def index(tmp_path):
    encoder = tiny_encoder("llama")  # no query instruction: equal texts get equal vectors
    store = RagkitVectorStore(str(tmp_path / "index"), encoder, mode="dense")
    index = VectorStoreIndex.from_vector_store(store, embed_model=RagkitEmbedding(encoder))
    for key, text in TEXTS.items():
        index.insert(Document(text=text, id_=key, metadata={"topic": key}))
    return index


def test_inserted_documents_are_found_by_their_text(index):
    for key, text in TEXTS.items():
        (best,) = index.as_retriever(similarity_top_k=1).retrieve(text)
        assert best.node.get_content() == text and best.node.metadata["topic"] == key
        assert best.node.metadata["ref_doc_id"] == key and best.score == pytest.approx(1.0, abs=1e-4)


def test_deleting_a_source_document_removes_its_nodes(index, tmp_path):
    index.delete_ref_doc("volcano")
    found = index.as_retriever(similarity_top_k=3).retrieve(TEXTS["volcano"])
    assert {n.node.metadata["ref_doc_id"] for n in found} == {"bees", "bread"}
    index.delete_ref_doc("bees")
    index.delete_ref_doc("bread")
    assert index.as_retriever(similarity_top_k=3).retrieve("anything") == []
    assert not (tmp_path / "index").exists()  # emptied: the next insert creates it again


def test_metadata_filters_reach_the_index(index):
    filters = MetadataFilters(
        filters=[MetadataFilter(key="topic", value=["bees", "bread"], operator=FilterOperator.IN)]
    )
    found = index.as_retriever(similarity_top_k=3, filters=filters).retrieve(TEXTS["volcano"])
    assert {n.node.metadata["topic"] for n in found} == {"bees", "bread"}
