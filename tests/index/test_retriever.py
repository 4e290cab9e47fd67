"""Retriever.search: single and batched queries, filters, k, and loading the encoder from the manifest."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import tiny_encoder

from ragkit import Encoder, RagkitError
from ragkit.corpus import document_text
from ragkit.index import ChunkingConfig, Index, Retriever


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A saved tiny encoder (with a query instruction) and an index of a small mixed corpus."""
    root = tmp_path_factory.mktemp("retriever")
    encoder = tiny_encoder("llama", query_instruction="Find: ")
    encoder.save(root / "encoder")
    encoder = Encoder.load(root / "encoder")
    corpus = root / "corpus"
    (corpus / "docs").mkdir(parents=True)
    (corpus / "docs" / "cats.md").write_text("# Cats\nThe cat sat on the mat.")
    (corpus / "docs" / "dogs.txt").write_text("A dog runs in the park with a red ball.")
    rows = [
        {"_id": "p1", "text": "Paris is the capital of France.", "lang": "en"},
        {"_id": "p2", "text": "Berlin is the capital of Germany.", "lang": "de"},
    ]
    (corpus / "cities.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    Index.build(corpus, encoder, root / "idx", chunking=ChunkingConfig(64, 8), show_progress=False)
    return root / "idx", encoder


def test_loads_its_encoder_from_the_manifest_with_the_query_instruction(built):
    index_dir, encoder = built
    retriever = Retriever.load(index_dir)
    assert retriever.encoder.config.query_instruction == "Find: "
    ours = retriever.search("capital city", k=4)
    expected = Retriever.load(index_dir, encoder=encoder).search("capital city", k=4)
    assert [h.chunk_id for h in ours] == [h.chunk_id for h in expected]
    query = encoder.encode(["capital city"], instruction="Find: ")[0]
    stored = encoder.encode_documents([document_text(h.title, h.text) for h in ours])
    np.testing.assert_allclose([h.score for h in ours], stored @ query, atol=1e-5)
    assert [h.score for h in ours] == sorted((h.score for h in ours), reverse=True)


def test_hits_carry_their_source(built):
    index_dir, _ = built
    hits = {h.doc_id: h for h in Retriever.load(index_dir).search("anything", k=10)}
    assert set(hits) == {"docs/cats.md", "docs/dogs.txt", "p1", "p2"}  # k larger than the index: all
    cat = hits["docs/cats.md"]
    assert (cat.path, cat.title, cat.start, cat.text) == (
        "docs/cats.md",
        "Cats",
        0,
        "# Cats\nThe cat sat on the mat.",
    )
    assert hits["p2"].metadata == {"lang": "de"} and hits["p2"].path == "cities.jsonl"


def test_several_queries_give_one_list_each(built):
    index_dir, _ = built
    retriever = Retriever.load(index_dir)
    results = retriever.search(["cat", "dog", "city"], k=2)
    assert len(results) == 3 and all(len(hits) == 2 for hits in results)
    assert [h.chunk_id for h in results[1]] == [h.chunk_id for h in retriever.search("dog", k=2)]
    filtered = retriever.search(["cat", "dog"], k=1, filter={"lang": "de"})
    assert [[h.doc_id for h in hits] for hits in filtered] == [["p2"], ["p2"]]
    assert retriever.search([], k=2) == []


@pytest.mark.parametrize(
    ("filter", "expected"),
    [
        ({"path": "docs/*"}, {"docs/cats.md", "docs/dogs.txt"}),
        ({"path": "*.md"}, {"docs/cats.md"}),
        ({"lang": "de"}, {"p2"}),
        ({"lang": "*"}, {"p1", "p2"}),
        ({"path": "cities.jsonl", "lang": "en"}, {"p1"}),
        ({"lang": "fr"}, set()),
    ],
)
def test_filters_on_path_and_metadata(built, filter, expected):
    index_dir, _ = built
    assert {h.doc_id for h in Retriever.load(index_dir).search("capital", k=10, filter=filter)} == expected


def test_filtered_search_still_returns_k_hits_when_they_exist(built):
    index_dir, _ = built
    hits = Retriever.load(index_dir).search("cat", k=1, filter={"lang": "de"})
    assert [h.doc_id for h in hits] == ["p2"]


def test_k_must_be_positive(built):
    with pytest.raises(RagkitError, match="k must be at least 1"):
        Retriever.load(built[0]).search("x", k=0)
