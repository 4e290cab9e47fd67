"""Defects an audit found: each bad input is a one-line RagkitError that says what is wrong."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from helpers import EXAMPLE_CORPUS, tiny_encoder

from ragkit import RagkitError
from ragkit.index import Index, Retriever


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("audit") / "idx"
    documents = [
        {"id": f"d{i}", "text": f"document number {i} about topic {i % 3}", "metadata": {"year": 2000 + i}}
        for i in range(6)
    ]
    Index.open(directory, tiny_encoder()).add(documents)
    return directory


@pytest.fixture(scope="module")
def retriever(index_dir):
    retriever = Retriever.load(index_dir, encoder=tiny_encoder())
    yield retriever
    retriever.close()


def test_a_single_id_is_one_id_not_its_letters(tmp_path):
    directory = tmp_path / "idx"
    Index.open(directory, tiny_encoder()).add(
        [{"id": i, "text": f"text {i}"} for i in ("abc", "a", "b", "c")]
    )
    report = Index.open(directory, tiny_encoder()).delete("abc")
    held = set(Retriever.load(directory, encoder=tiny_encoder()).snapshot.store.doc_ids().values())
    assert held == {"a", "b", "c"} and report is not None


@pytest.mark.parametrize(
    ("filter", "message"),
    [
        ({"year": 2**70}, "out of range"),
        ({"year": {"$in": [1, 2**64]}}, "out of range"),
        ({"path": "\udcff"}, "lone surrogate"),
        ({"\ud800": 1}, "field .* holds a lone surrogate"),
        ({"$or": [{"year": i} for i in range(1500)]}, "too complex"),
    ],
)
def test_bad_filters_are_one_line_errors_not_a_damaged_docstore(retriever, filter, message):
    with pytest.raises(RagkitError, match=message) as caught:
        retriever.search("topic", k=2, mode="bm25", filter=filter)
    assert "damaged" not in str(caught.value)


@pytest.mark.parametrize("depth", [200, 3000])  # 3000: past Python's recursion limit
def test_a_deep_filter_is_refused_and_the_index_still_answers(retriever, depth):
    deep: dict = {"year": 2001}
    for _ in range(depth):
        deep = {"$and": [deep]}
    with pytest.raises(RagkitError, match="too complex"):
        retriever.search("topic", k=2, mode="bm25", filter=deep)
    assert retriever.search("topic", k=2, mode="bm25", filter={"year": 2001})[0].doc_id == "d1"


def test_query_vectors_of_the_wrong_width_are_refused(retriever):
    with pytest.raises(RagkitError, match=r"`query_vectors` have 7 dims; this index's encoder gives 32"):
        retriever.search("topic", k=2, mode="dense", query_vectors=np.zeros((1, 7), dtype=np.float32))


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            {"id": "x", "text": "fine", "metadata": {"when": object()}},
            r"documents\[0\] \('x'\) metadata is not JSON",
        ),
        ({"id": "x", "text": "bad \udcff text"}, r"documents\[0\] \('x'\) holds a lone surrogate"),
        ({"id": "\udcff", "text": "fine"}, r"documents\[0\] .* holds a lone surrogate"),
    ],
)
def test_documents_that_cannot_be_stored_are_refused_before_any_work(index_dir, document, message):
    with pytest.raises(RagkitError, match=message):
        Index.open(index_dir, tiny_encoder()).upsert([document])


@pytest.mark.parametrize("where", [".", "..", ""])
def test_the_current_folder_is_not_an_index_folder(tmp_path, where):
    with pytest.raises(RagkitError, match="is not a folder of its own"):
        Index.open(where, tiny_encoder()).add([{"id": "a", "text": "text"}])
    with pytest.raises(RagkitError, match="is not a folder of its own"):
        Index.build(tmp_path, tiny_encoder(), where)


@pytest.fixture
def corpus_index(tmp_path):
    from helpers import EXAMPLE_CORPUS

    encoder = tiny_encoder()
    Index.build(EXAMPLE_CORPUS, encoder, tmp_path / "idx", show_progress=False)
    return EXAMPLE_CORPUS, encoder, tmp_path / "idx"


def test_an_update_without_its_docstore_stops_before_any_work(corpus_index):
    corpus, encoder, index_dir = corpus_index
    (index_dir / "docstore.sqlite").unlink()
    with pytest.raises(RagkitError, match=r"docstore\.sqlite is missing.*`rebuild`"):
        Index.build(corpus, encoder, index_dir, show_progress=False)


@pytest.mark.parametrize("damage", ["garbage", "missing"])
def test_an_update_rebuilds_a_damaged_faiss_file_from_the_docstore_without_embedding(
    corpus_index, monkeypatch, damage
):
    corpus, encoder, index_dir = corpus_index
    retriever = Retriever.load(index_dir, encoder=encoder)
    before = [(h.chunk_id, round(h.score, 5)) for h in retriever.search("waggle dance", k=5, mode="dense")]
    faiss_file = index_dir / retriever.manifest.index_path
    faiss_file.write_bytes(b"not a faiss index at all") if damage == "garbage" else faiss_file.unlink()
    with pytest.raises(RagkitError, match=r"index-1\.faiss is missing or corrupt; build the index again"):
        Retriever.load(index_dir, encoder=encoder)
    monkeypatch.setattr(encoder, "encode_documents", lambda *a, **k: pytest.fail("embedded again"))
    report = Index.build(corpus, encoder, index_dir, show_progress=False)  # the corpus is unchanged
    assert report.chunks_embedded == 0 and "index-1.faiss was damaged or missing" in report.retrained
    after = Retriever.load(index_dir, encoder=encoder).search("waggle dance", k=5, mode="dense")
    assert [(h.chunk_id, round(h.score, 5)) for h in after] == before


def test_a_missing_bm25_part_still_searches_dense_and_the_next_update_rebuilds_it(corpus_index):
    import shutil

    corpus, encoder, index_dir = corpus_index
    manifest = Retriever.load(index_dir, encoder=encoder).manifest
    shutil.rmtree(index_dir / manifest.lexical_path)
    retriever = Retriever.load(index_dir, encoder=encoder)
    assert retriever.search("bees", k=1, mode="dense")  # dense needs no BM25
    with pytest.raises(
        RagkitError, match=r"BM25 part of the index \(.*bm25-1\) is missing; search with `mode` dense"
    ):
        retriever.search("bees", k=1, mode="bm25")
    report = Index.build(corpus, encoder, index_dir, show_progress=False)  # the corpus is unchanged
    assert report.chunks_embedded == 0
    assert "repaired in place (generation 2): bm25-1/ (BM25) was missing" in report.summary()
    assert "nothing changed" not in report.summary()
    assert Retriever.load(index_dir, encoder=encoder).search("waggle dance", k=1, mode="bm25")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_numbers_in_metadata_are_refused_at_write_time(tmp_path, value):
    with pytest.raises(RagkitError, match=r"documents\[0\] \('x'\) metadata is not JSON"):
        Index.open(tmp_path / "idx", tiny_encoder()).add(
            [{"id": "x", "text": "t", "metadata": {"score": value}}]
        )
    assert not (tmp_path / "idx").exists()


def test_a_filter_over_rows_an_older_ragkit_stored_with_nan_still_answers(tmp_path):
    import sqlite3

    directory = tmp_path / "idx"
    documents = [{"id": f"d{i}", "text": f"document {i}", "metadata": {"year": 2000 + i}} for i in range(4)]
    Index.open(directory, tiny_encoder()).add(documents)
    with sqlite3.connect(directory / "docstore.sqlite") as db:  # as json.dumps wrote NaN before
        db.execute("""UPDATE chunks SET metadata = '{"year": NaN}' WHERE doc_id = 'd0'""")
    retriever = Retriever.load(directory, encoder=tiny_encoder())
    try:
        hits = retriever.search("document", k=4, mode="bm25", filter={"year": {"$gte": 2001}})
        assert sorted(h.doc_id for h in hits) == ["d1", "d2", "d3"]
    finally:
        retriever.close()


@pytest.mark.parametrize(
    ("ids", "message"),
    [
        (None, "`ids` must be an id or a list of ids"),
        ([None], r"`ids`\[0\] is NoneType"),
        ("\ud800", "surrogate"),
    ],
)
def test_bad_ids_to_delete_are_one_line_errors(index_dir, ids, message):
    with pytest.raises(RagkitError, match=message):
        Index.open(index_dir, tiny_encoder()).delete(ids)


def test_a_number_is_one_id_to_delete(tmp_path):
    directory = tmp_path / "idx"
    Index.open(directory, tiny_encoder()).add([{"id": i, "text": f"text {i}"} for i in (5, 55)])
    Index.open(directory, tiny_encoder()).delete(5)
    retriever = Retriever.load(directory, encoder=tiny_encoder())
    assert set(retriever.snapshot.store.doc_ids().values()) == {"55"}
    retriever.close()


def test_calibration_queries_without_calibration_are_refused(tmp_path):
    with pytest.raises(RagkitError, match="`calibration_queries` says how to calibrate"):
        Index.open(tmp_path / "idx", tiny_encoder(), calibrate=False, calibration_queries="generated")


def test_a_file_name_that_is_not_utf8_is_indexed_under_an_escaped_name(tmp_path):
    import os

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    with open(os.path.join(os.fsencode(corpus), b"bad\xff.md"), "w") as f:
        f.write("# Bees\nBees dance to tell the hive where flowers are.")
    (corpus / "good.md").write_text("# Bread\nBread rises with yeast.")
    Index.build(corpus, tiny_encoder(), tmp_path / "idx", show_progress=False)
    retriever = Retriever.load(tmp_path / "idx", encoder=tiny_encoder())
    hits = retriever.search("bees dance", k=2, mode="bm25", filter={"path": "bad*"})
    assert [h.path for h in hits] == ["bad\\xff.md"]
    retriever.close()


def test_a_read_only_index_folder_is_one_line_from_the_lock(tmp_path, monkeypatch):
    import errno
    from pathlib import Path

    def read_only(self, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(self))

    monkeypatch.setattr(Path, "mkdir", read_only)
    with pytest.raises(RagkitError, match=r"cannot write to .* \(Read-only file system\)"):
        Index.build(EXAMPLE_CORPUS, tiny_encoder(), tmp_path / "ro" / "idx", show_progress=False)


def test_a_full_disk_during_an_update_says_so_and_the_index_stays(corpus_index, tmp_path, monkeypatch):
    from ragkit.index import generation

    corpus, encoder, index_dir = corpus_index
    before = Retriever.load(index_dir, encoder=encoder).search("bees", k=3, mode="dense")
    changed = tmp_path / "changed"
    shutil.copytree(corpus, changed)
    (changed / "new.md").write_text("# New\nA new file about bees and honey.")

    def full(index, path):
        raise RuntimeError(f"Error: fwrite failed writing {path}: No space left on device")

    monkeypatch.setattr(generation.faiss, "write_index", full)
    with pytest.raises(RagkitError, match=r"disk holding .* is full; .* the previous index is intact"):
        Index.build(changed, encoder, index_dir, show_progress=False)
    monkeypatch.undo()
    after = Retriever.load(index_dir, encoder=encoder).search("bees", k=3, mode="dense")
    assert [h.chunk_id for h in after] == [h.chunk_id for h in before]
    report = Index.build(changed, encoder, index_dir, show_progress=False)  # space again: it resumes
    assert report.added == 1 and report.resumed == 1 and report.chunks_embedded == 0


def test_an_index_of_stop_words_only_builds_and_bm25_finds_nothing(tmp_path):
    directory = tmp_path / "idx"
    Index.open(directory, tiny_encoder()).add(
        [{"id": i, "text": t} for i, t in enumerate(["a", "the", "of it"])]
    )
    retriever = Retriever.load(directory, encoder=tiny_encoder())
    assert (
        retriever.search("the", k=3, mode="bm25") == [] and len(retriever.search("a", k=3, mode="dense")) == 3
    )
    retriever.close()
