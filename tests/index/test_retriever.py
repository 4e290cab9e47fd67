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
        {"_id": "p1", "text": "Paris is the capital of France.", "lang": "en", "population": 2.1},
        {"_id": "p2", "text": "Berlin is the capital of Germany.", "lang": "de", "population": 3.6},
    ]
    (corpus / "cities.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    Index.build(corpus, encoder, root / "idx", chunking=ChunkingConfig(64, 8), show_progress=False)
    return root / "idx", encoder


def test_loads_its_encoder_from_the_manifest_with_the_query_instruction(built):
    index_dir, encoder = built
    retriever = Retriever.load(index_dir)
    assert retriever.encoder.config.query_instruction == "Find: "
    ours = retriever.search("capital city", k=4, mode="dense")
    expected = Retriever.load(index_dir, encoder=encoder).search("capital city", k=4, mode="dense")
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
    assert hits["p2"].metadata == {"lang": "de", "population": 3.6} and hits["p2"].path == "cities.jsonl"


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
        ({"population": {"$gt": 3}}, {"p2"}),
        ({"population": {"$gte": 2.1, "$lt": 3.6}}, {"p1"}),
        ({"lang": {"$in": ["en", "fr"]}}, {"p1"}),
        ({"lang": {"$nin": ["en"]}}, {"p2"}),
        ({"$or": [{"lang": "de"}, {"path": "*.md"}]}, {"p2", "docs/cats.md"}),
        ({"$and": [{"path": "cities.jsonl"}, {"$or": [{"lang": "en"}, {"population": 9}]}]}, {"p1"}),
        ({"doc_id": "p1"}, {"p1"}),
        ({"title": "Cats"}, {"docs/cats.md"}),
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
    with pytest.raises(RagkitError, match="`k` must be a whole number of at least 1"):
        Retriever.load(built[0]).search("x", k=0)


def test_a_retriever_answers_from_many_threads_at_once(built):
    index_dir, encoder = built
    retriever = Retriever.load(index_dir, encoder=encoder)
    expected = [h.chunk_id for h in retriever.search("capital city", k=3)]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:  # before: sqlite3.ProgrammingError from every other thread
        answers = list(
            pool.map(lambda _: [h.chunk_id for h in retriever.search("capital city", k=3)], range(32))
        )
    assert answers == [expected] * 32
    retriever.close()


@pytest.mark.parametrize("damage", ["missing", "truncated", "garbage"])
def test_a_missing_or_damaged_docstore_is_a_one_line_rebuild_error(built, tmp_path, damage):
    import shutil

    index_dir, encoder = built
    copy = tmp_path / "idx"
    shutil.copytree(index_dir, copy)
    store = copy / "docstore.sqlite"
    if damage == "missing":
        store.unlink()
    elif damage == "truncated":
        store.write_bytes(store.read_bytes()[:1000])
    else:
        store.write_bytes(b"not a database at all" * 100)
    with pytest.raises(RagkitError, match="rebuild") as error:
        Retriever.load(copy, encoder=encoder).search("capital", k=2)
    assert "\n" not in str(error.value)


def test_chunk_lookup_binds_one_sql_variable_however_many_candidates(built):
    from ragkit.index.docstore import Docstore

    index_dir, _ = built
    store = Docstore(index_dir / "docstore.sqlite", readonly=True)
    positions = list(range(300_000))  # a selective filter widening to a large index asks for this many
    found = list(store.chunks_at(positions))  # before: "too many SQL variables"
    assert [c["chunk_id"] for c in found] and len(found) == store.counts().chunks
    store.close()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"k": "5"}, "`k` must be a whole number"),
        ({"k": 2.5}, "`k` must be a whole number"),
        ({"k": 0}, "`k` must be a whole number"),
        ({"filter": {"path": [5]}}, "`filter` value for 'path' must be a string"),
        ({"filter": {"lang": {"$between": [1, 2]}}}, "unknown operator '\\$between' for 'lang'"),
        ({"filter": {"$not": {"lang": "en"}}}, "unknown operator '\\$not'"),
        ({"filter": {"lang": {"$in": "en"}}}, "\\$in takes a list"),
        ({"filter": {"$or": []}}, "\\$or takes a non-empty list"),
        ({"filter": "path=*.md"}, "`filter` must be a dict"),
    ],
)
def test_bad_search_arguments_are_one_line_errors_naming_the_argument(built, kwargs, message):
    index_dir, encoder = built
    retriever = Retriever.load(index_dir, encoder=encoder)
    with pytest.raises(RagkitError, match=message):
        retriever.search("capital", **kwargs)


@pytest.mark.parametrize("query", ["\udcff", b"caf\xff".decode("utf-8", "surrogateescape")])
def test_a_query_with_lone_surrogates_is_a_one_line_error(built, query):
    index_dir, encoder = built
    with pytest.raises(RagkitError, match=r"query\[0\] holds a lone surrogate"):
        Retriever.load(index_dir, encoder=encoder).search(query, k=2)


def test_the_manifest_is_typed_and_loads_the_encoder_in_one_call(built):
    from ragkit.index.manifest import IndexManifest

    index_dir, encoder = built
    manifest = IndexManifest.read(index_dir)
    assert manifest.config_hash == encoder.fingerprint().config_hash
    config = manifest.encoder_config()
    assert config.query_instruction == "Find: " and config.source == encoder.config.source
    loaded = Encoder.load(config)
    assert loaded.fingerprint() == encoder.fingerprint()


def test_a_manifest_written_by_the_previous_ragkit_still_loads(built, tmp_path):
    """Manifests from before IndexManifest were plain dicts written field by field; some lack `fields`."""
    import shutil

    index_dir, encoder = built
    copy = tmp_path / "idx"
    shutil.copytree(index_dir, copy)
    data = json.loads((copy / "manifest.json").read_text())
    old_order = [
        "format_version",
        "created",
        "updated",
        "corpus",
        "encoder",
        "chunking",
        "transform",
        "index",
    ]
    old = {key: data[key] for key in old_order}
    old.update(search_params=data["search_params"], counts=data["counts"], bytes_per_vector=1.0, faiss="x")
    (copy / "manifest.json").write_text(json.dumps(old, indent=2))
    hits = Retriever.load(copy, encoder=encoder).search("capital city", k=2)
    assert [h.chunk_id for h in hits] == [
        h.chunk_id for h in Retriever.load(index_dir).search("capital city", k=2)
    ]
