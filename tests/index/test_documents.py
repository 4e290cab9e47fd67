"""`Index.open`: add, upsert and delete documents by id, atomically, giving the index a rebuild would."""

from __future__ import annotations

import gzip
import itertools
import json

import faiss
import numpy as np
import pytest
from helpers import run_ragkit, shared_folder, tiny_encoder

from ragkit import Encoder, RagkitError
from ragkit.corpus import Document
from ragkit.index import ChunkingConfig, Index, Retriever
from ragkit.index import build as build_module


@pytest.fixture(scope="module")
def rows():
    """Forty real SciFact abstracts, as documents with a metadata field."""
    with gzip.open(shared_folder("scifact") / "corpus.jsonl.gz", "rt") as f:
        data = [json.loads(line) for line in itertools.islice(f, 40)]
    return [
        {"id": r["_id"], "title": r["title"], "text": r["text"], "metadata": {"n": i}}
        for i, r in enumerate(data)
    ]


def _snapshot(index_dir, encoder):
    """Documents, chunk texts and FAISS vectors in (document, text) order, and a few searches."""
    retriever = Retriever.load(index_dir, encoder=encoder)
    index = faiss.read_index(str(index_dir / retriever.manifest.index_path))
    chunk_ids, chunk_texts = retriever.store.texts()
    doc_of = retriever.store.doc_ids()
    order = sorted(range(len(chunk_ids)), key=lambda r: (doc_of[chunk_ids[r]], chunk_texts[r]))
    vectors = np.stack([index.reconstruct(int(chunk_ids[r])) for r in order])  # by chunk id
    texts = [chunk_texts[r] for r in order]
    ids = [doc_of[chunk_ids[r]] for r in order]
    searches = [
        [(h.doc_id, round(h.score, 5)) for h in retriever.search(q, k=5, mode=mode)]
        for q in ("cancer cells", "immune response in mice")
        for mode in ("dense", "bm25", "hybrid")
    ]
    return ids, texts, vectors, searches


def test_upsert_and_delete_give_the_index_a_rebuild_from_the_result_gives(rows, tmp_path):
    encoder = tiny_encoder()
    chunking = ChunkingConfig(128, 16)
    index = Index.open(tmp_path / "a", encoder, chunking=chunking)
    first = index.add(rows[:30])
    assert first.added == 30 and first.counts.documents == 30
    changed = [{**r, "text": r["text"] + " Revised."} for r in rows[10:15]]
    report = index.upsert(changed + rows[30:] + rows[:5])  # 5 changed, 10 new, 5 unchanged
    assert (report.added, report.updated, report.unchanged) == (10, 5, 25)
    report = index.delete([r["id"] for r in rows[:3]] + ["no-such-id"])
    assert report.removed == 3 and report.counts.documents == 37

    result = {r["id"]: r for r in rows[3:]} | {r["id"]: r for r in changed}
    Index.open(tmp_path / "b", encoder, chunking=chunking).add(list(result.values()))
    a, b = _snapshot(tmp_path / "a", encoder), _snapshot(tmp_path / "b", encoder)
    assert a[0] == b[0] and a[1] == b[1]  # the same chunks
    np.testing.assert_allclose(a[2], b[2], atol=1e-6)
    assert a[3] == b[3]  # and the same answers, dense, BM25 and hybrid


def test_an_unchanged_upsert_embeds_nothing_and_add_refuses_a_known_id(rows, tmp_path):
    encoder = Encoder.load(tiny_encoder().save(tmp_path / "tiny"))  # saved: the manifest can load it
    index = Index.open(tmp_path / "idx", encoder)
    index.add(rows[:5])
    assert index.upsert(rows[:5]).chunks_embedded == 0
    with pytest.raises(RagkitError, match=rf"already holds document '{rows[0]['id']}'.*use `upsert`"):
        index.add(rows[:2])
    reopened = Index.open(tmp_path / "idx")  # the encoder comes from the manifest
    assert reopened.encoder.fingerprint() == encoder.fingerprint()
    reopened.upsert([Document("extra", "A new document about zebras.", "Zebras")])
    hit = Retriever.load(tmp_path / "idx", encoder=encoder).search("zebras", k=1, mode="bm25")[0]
    assert (hit.doc_id, hit.title) == ("extra", "Zebras")


def test_a_crash_during_an_update_leaves_the_previous_index(rows, tmp_path, monkeypatch):
    encoder = tiny_encoder()
    index = Index.open(tmp_path / "idx", encoder)
    index.add(rows[:5])
    before = _snapshot(tmp_path / "idx", encoder)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(build_module, "generation_manifest", crash)  # everything written but the commit
    with pytest.raises(KeyboardInterrupt):
        index.upsert(rows[5:10])
    monkeypatch.undo()
    after = _snapshot(tmp_path / "idx", encoder)
    assert before[0] == after[0] and before[3] == after[3]
    assert index.upsert(rows[5:10]).added == 5  # and the next update goes through


def test_a_killed_update_is_not_adopted_by_another_one_but_its_rerun_resumes(rows, tmp_path, monkeypatch):
    encoder = tiny_encoder()
    index = Index.open(tmp_path / "idx", encoder)
    index.add(rows[:5])

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(build_module, "generation_manifest", killed)  # embedded and written, never committed
    with pytest.raises(KeyboardInterrupt):
        index.upsert(rows[5:20])
    monkeypatch.undo()
    report = index.upsert(rows[20:21])  # another, unrelated call
    held = set(Retriever.load(tmp_path / "idx", encoder=encoder).store.doc_ids().values())
    assert held == {r["id"] for r in rows[:5] + rows[20:21]}  # the killed call's 15 did not come with it
    assert report.added == 1
    again = index.upsert(rows[5:20])  # the killed call, run again
    assert again.added == 15


@pytest.mark.parametrize(
    ("documents", "message"),
    [
        ({"id": "a", "text": "x"}, "must be a list of documents"),
        ([{"text": "no id"}], r"documents\[0\] has no id"),
        ([{"id": "a", "text": 5}], r"documents\[0\] \('a'\) needs a string 'text'"),
        ([{"id": "a", "text": "   "}], r"documents\[0\] \('a'\) is empty"),
        (["plain string"], r"documents\[0\] must be a Document or a dict"),
    ],
)
def test_bad_documents_are_one_line_errors(tmp_path, documents, message):
    with pytest.raises(RagkitError, match=message):
        Index.open(tmp_path / "idx", tiny_encoder()).upsert(documents)
    assert not (tmp_path / "idx").exists()


def test_ragkit_index_jsonl_upserts_a_stream_of_records(rows, tmp_path):
    model = tiny_encoder().save(tmp_path / "tiny")
    stream = tmp_path / "docs.jsonl"
    stream.write_text(
        "".join(
            json.dumps({"id": r["id"], "text": r["text"], "year": 2000 + i}) + "\n"
            for i, r in enumerate(rows[:6])
        )
    )
    index = str(tmp_path / "idx")
    result = run_ragkit("index", "--jsonl", str(stream), "--index", index, "--model", str(model))
    assert result.returncode == 0, result.stderr
    stream.write_text(json.dumps({"id": rows[0]["id"], "text": "Zebras graze.", "year": 1999}) + "\n")
    result = run_ragkit("index", "--jsonl", str(stream), "--index", index, "--model", str(model))
    assert result.returncode == 0, result.stderr
    retriever = Retriever.load(index)
    assert retriever.store.counts().documents == 6
    (hit,) = retriever.search("zebras", k=1, mode="bm25", filter={"year": {"$lt": 2000}})
    assert (hit.doc_id, hit.text, hit.metadata) == (rows[0]["id"], "Zebras graze.", {"year": 1999})
    both = run_ragkit("index", str(tmp_path), "--jsonl", str(stream), "--index", index)
    assert both.returncode == 1 and "one of the two" in both.stderr
