"""Index.build: incremental updates equal full rebuilds, interrupted builds keep the old index and resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import tiny_encoder

from ragkit import RagkitError
from ragkit.corpus import document_text
from ragkit.index import ChunkingConfig, Index, Retriever
from ragkit.index.transform import TransformRecord

CHUNKING = ChunkingConfig(chunk_size=48, overlap=8)


@pytest.fixture
def corpus(tmp_path, cranfield):
    """24 real Cranfield abstracts, one .txt file each, and a .jsonl with 6 more (with metadata)."""
    docs, _ = cranfield
    root = tmp_path / "corpus"
    (root / "txt").mkdir(parents=True)
    for d in docs[:24]:
        (root / "txt" / f"{d['_id']}.txt").write_text(d["text"])
    records = [
        {"_id": d["_id"], "title": d["title"], "text": d["text"], "part": str(i % 2)}
        for i, d in enumerate(docs[24:30])
    ]
    (root / "more.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return root


def as_embedded(hit) -> str:
    """The text a chunk was embedded as (its document's title above it)."""
    return document_text(hit.title, hit.text)


def build(corpus, encoder, index_dir, **options):
    return Index.build(corpus, encoder, index_dir, chunking=CHUNKING, show_progress=False, **options)


def search_all(index_dir, encoder, queries, k=5):
    """Every query's dense hits: what the index holds (not its default setting, the index's own
    calibration, which an update keeps and a rebuild may choose again; nor BM25, whose tied scores
    rank by chunk id, which an update and a rebuild number differently)."""
    retriever = Retriever.load(index_dir, encoder=encoder)
    try:
        return [
            [(h.path, h.doc_id, h.start, round(h.score, 4)) for h in hits]
            for hits in retriever.search(queries, k=k, mode="dense")
        ]
    finally:
        retriever.close()


def test_a_document_finds_itself_first(corpus, encoder, tmp_path):
    report = build(corpus, encoder, tmp_path / "idx")
    assert report.added == 25 and report.counts.documents == 30 and report.counts.chunks > 30
    retriever = Retriever.load(tmp_path / "idx", encoder=encoder)
    for chunk in retriever.search(["wing", "flow", "heat"], k=3)[0]:
        hits = retriever.search(as_embedded(chunk), k=1, mode="dense")  # its own vector: cosine 1
        assert (hits[0].chunk_id, hits[0].score) == (chunk.chunk_id, pytest.approx(1.0, abs=1e-4))
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    assert manifest["counts"]["vectors"] == report.counts.chunks
    assert manifest["bytes_per_vector"] >= 4 * encoder.dim and manifest["index"]["factory"] == "Flat"


def test_incremental_update_equals_a_full_rebuild(corpus, encoder, tmp_path):
    build(corpus, encoder, tmp_path / "idx")
    (corpus / "txt" / "2.txt").write_text("a changed document about supersonic flow over a flat plate")
    (corpus / "txt" / "3.txt").unlink()
    (corpus / "txt" / "new.txt").write_text("a new document on heat transfer in hypersonic flight")
    report = build(corpus, encoder, tmp_path / "idx")
    assert (report.added, report.updated, report.removed, report.unchanged) == (1, 1, 1, 23)
    assert report.chunks_embedded == 2  # only the two short new texts were embedded

    rebuilt = build(corpus, encoder, tmp_path / "full")
    assert rebuilt.counts == report.counts
    queries = ["supersonic flow", "heat transfer", "boundary layer transition", "wing"]
    incremental, full = (
        search_all(tmp_path / "idx", encoder, queries),
        search_all(tmp_path / "full", encoder, queries),
    )
    assert [[h[:3] for h in q] for q in incremental] == [[h[:3] for h in q] for q in full]
    np.testing.assert_allclose(
        [[h[3] for h in q] for q in incremental], [[h[3] for h in q] for q in full], atol=1e-4
    )


def test_nothing_changed_embeds_nothing(corpus, encoder, tmp_path):
    build(corpus, encoder, tmp_path / "idx")
    report = build(corpus, encoder, tmp_path / "idx")
    assert report.chunks_embedded == 0 and report.unchanged == 25


def test_an_interrupted_build_keeps_the_old_index_and_resumes(corpus, encoder, tmp_path, monkeypatch):
    build(corpus, encoder, tmp_path / "idx")
    before = search_all(tmp_path / "idx", encoder, ["wing"])
    for i in range(100, 110):  # enough new chunks for several embedding groups
        (corpus / "txt" / f"x{i}.txt").write_text(f"note {i}. " + (corpus / "txt" / "1.txt").read_text() * 4)

    calls = {"n": 0}
    original = encoder.encode_documents

    def crash_on_second_group(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # as if Ctrl-C
        return original(*args, **kwargs)

    monkeypatch.setattr(encoder, "encode_documents", crash_on_second_group)
    with pytest.raises(KeyboardInterrupt):
        build(corpus, encoder, tmp_path / "idx")
    assert search_all(tmp_path / "idx", encoder, ["wing"]) == before  # old index intact and loadable

    monkeypatch.setattr(encoder, "encode_documents", original)
    report = build(corpus, encoder, tmp_path / "idx")
    assert report.resumed > 0 and report.added == 10
    assert not (tmp_path / "idx.building").exists()
    full = build(corpus, encoder, tmp_path / "full")
    assert report.counts == full.counts
    assert [[h[:3] for h in q] for q in search_all(tmp_path / "idx", encoder, ["wing", "flow"])] == [
        [h[:3] for h in q] for q in search_all(tmp_path / "full", encoder, ["wing", "flow"])
    ]


def test_an_error_while_indexing_leaves_the_old_index(corpus, encoder, tmp_path, monkeypatch):
    build(corpus, encoder, tmp_path / "idx")
    before = (tmp_path / "idx" / "manifest.json").read_text()
    hits = search_all(tmp_path / "idx", encoder, ["wing", "extra document"])
    # Fails after the new FAISS file is written, before the manifest that would commit it.
    monkeypatch.setattr(
        "ragkit.index.generation.LexicalIndex.build", lambda *a, **k: (_ for _ in ()).throw(MemoryError())
    )
    (corpus / "txt" / "extra.txt").write_text("an extra document")
    (corpus / "txt" / "1.txt").unlink()
    with pytest.raises(MemoryError):
        build(corpus, encoder, tmp_path / "idx")
    assert (tmp_path / "idx" / "manifest.json").read_text() == before
    assert search_all(tmp_path / "idx", encoder, ["wing", "extra document"]) == hits
    monkeypatch.undo()
    report = build(corpus, encoder, tmp_path / "idx")
    assert (report.added, report.removed, report.generation) == (1, 1, 2)


def test_another_encoder_is_refused_unless_rebuilding(corpus, encoder, tmp_path):
    build(corpus, encoder, tmp_path / "idx")
    other = tiny_encoder("qwen2")
    with pytest.raises(RagkitError, match=r"was built with encoder 'llama'.*`rebuild`"):
        build(corpus, other, tmp_path / "idx")
    with pytest.raises(RagkitError, match=r"was built with encoder 'llama'.*not 'qwen2'"):
        Retriever.load(tmp_path / "idx", encoder=other)
    report = build(corpus, other, tmp_path / "idx", rebuild=True)
    assert report.added == 25 and Retriever.load(tmp_path / "idx", encoder=other).search("wing", k=1)


def test_a_changed_encoder_of_the_same_name_asks_for_a_rebuild(corpus, encoder, tmp_path):
    """A new release of a built-in keeps its name and changes its hash: the index says so."""
    build(corpus, encoder, tmp_path / "idx")
    changed = tiny_encoder("llama", query_instruction="Given a question, retrieve passages that answer it")
    another = r"built with another version of encoder 'llama'.*build it again with `rebuild`"
    with pytest.raises(RagkitError, match=another):
        build(corpus, changed, tmp_path / "idx")
    reading = r"built with another version of encoder 'llama'.*\(ragkit index CORPUS --index DIR --rebuild\)"
    with pytest.raises(RagkitError, match=reading):  # a reader (query, serve) has no `rebuild` to name
        Retriever.load(tmp_path / "idx", encoder=changed)


def test_other_chunking_is_refused_unless_rebuilding(corpus, encoder, tmp_path):
    build(corpus, encoder, tmp_path / "idx")
    with pytest.raises(RagkitError, match="chunking"):
        Index.build(corpus, encoder, tmp_path / "idx", chunking=ChunkingConfig(64, 8), show_progress=False)


def test_pca_is_recorded_and_applied_to_queries(corpus, encoder, tmp_path):
    report = build(corpus, encoder, tmp_path / "idx", pca=8, spec="hnsw")
    assert report.transform == TransformRecord("pca", 32, 8, whiten=False, file="transform-1.pca")
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    assert manifest["transform"]["kind"] == "pca" and manifest["index"]["factory"] == "HNSW32"
    retriever = Retriever.load(tmp_path / "idx", encoder=encoder)
    chunk = retriever.search("wing", k=1)[0]
    assert retriever.search(as_embedded(chunk), k=1)[0].chunk_id == chunk.chunk_id


def test_impossible_reduction_is_refused_before_embedding(corpus, encoder, tmp_path, monkeypatch):
    monkeypatch.setattr(encoder, "encode_documents", lambda *a, **k: pytest.fail("embedded first"))
    with pytest.raises(RagkitError, match="between 1 and the encoder's 32"):
        build(corpus, encoder, tmp_path / "idx", pca=64)


def test_empty_or_textless_corpora_are_refused_without_creating_an_index(tmp_path, encoder):
    (tmp_path / "empty").mkdir()
    with pytest.raises(RagkitError, match="no files"):
        build(tmp_path / "empty", encoder, tmp_path / "idx")
    (tmp_path / "binary").mkdir()
    (tmp_path / "binary" / "a.txt").write_bytes(b"\x00\x00")
    with pytest.raises(RagkitError, match="no text found"):
        build(tmp_path / "binary", encoder, tmp_path / "idx")
    assert not (tmp_path / "idx").exists()


def test_missing_corrupt_and_future_indexes_are_one_line_errors(corpus, encoder, tmp_path):
    with pytest.raises(RagkitError, match="no index at"):
        Retriever.load(tmp_path / "none", encoder=encoder)
    build(corpus, encoder, tmp_path / "idx")
    manifest = tmp_path / "idx" / "manifest.json"
    good = manifest.read_text()
    manifest.write_text(good.replace('"format_version": 2', '"format_version": 99'))
    with pytest.raises(RagkitError, match="upgrade ragkit"):
        Retriever.load(tmp_path / "idx", encoder=encoder)
    manifest.write_text("{ not json")
    with pytest.raises(RagkitError, match="corrupt"):
        Retriever.load(tmp_path / "idx", encoder=encoder)
    manifest.write_text(good)
    (tmp_path / "idx" / "index-1.faiss").write_bytes(b"garbage")
    with pytest.raises(RagkitError, match="missing or corrupt"):
        Retriever.load(tmp_path / "idx", encoder=encoder)
    manifest.write_text("{ not json")
    with pytest.raises(RagkitError, match="corrupt"):
        build(corpus, encoder, tmp_path / "idx")
    assert build(corpus, encoder, tmp_path / "idx", rebuild=True).added == 25  # --rebuild repairs it
    assert Retriever.load(tmp_path / "idx", encoder=encoder).search("wing", k=1)


def test_an_interrupted_first_build_resumes(corpus, encoder, tmp_path, monkeypatch):
    for i in range(10):
        (corpus / "txt" / f"long{i}.txt").write_text((corpus / "txt" / "1.txt").read_text() * 5)
    original = encoder.encode_documents
    calls = {"n": 0}

    def crash_on_second_group(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(encoder, "encode_documents", crash_on_second_group)
    with pytest.raises(KeyboardInterrupt):
        build(corpus, encoder, tmp_path / "idx")
    assert not (tmp_path / "idx").exists() and (tmp_path / "idx.building").is_dir()
    monkeypatch.setattr(encoder, "encode_documents", original)
    report = build(corpus, encoder, tmp_path / "idx")
    assert 0 < report.resumed < 35 and report.added == 35
    assert report.counts == build(corpus, encoder, tmp_path / "full").counts


def test_a_killed_writer_leaves_no_stuck_lock(corpus, encoder, tmp_path):
    import os
    import signal
    import subprocess
    import sys

    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from ragkit.index.lock import writer_lock\n"
            "with writer_lock(Path(sys.argv[1])):\n    print('locked', flush=True); time.sleep(60)",
            str(tmp_path / "idx"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(RagkitError, match=f"is being updated by PID {holder.pid}; wait for it"):
        build(corpus, encoder, tmp_path / "idx")
    os.kill(holder.pid, signal.SIGKILL)  # a crash mid-build
    holder.wait()
    assert build(corpus, encoder, tmp_path / "idx").added > 0


def test_an_update_keeps_the_recorded_pca_and_spec_and_refuses_other_values(corpus, encoder, tmp_path):
    build(corpus, encoder, tmp_path / "idx", pca=8, spec="hnsw")
    (corpus / "txt" / "new.txt").write_text("A new note on supersonic wing flutter.")
    report = build(corpus, encoder, tmp_path / "idx")  # no options: the index's own are kept
    assert report.added == 1 and report.transform.kind == "pca" and report.transform.dim_out == 8
    assert json.loads((tmp_path / "idx" / "manifest.json").read_text())["index"]["factory"] == "HNSW32"
    with pytest.raises(RagkitError, match="built with `pca` 8, not `pca` 16; leave `pca` out"):
        build(corpus, encoder, tmp_path / "idx", pca=16)
    with pytest.raises(RagkitError, match="built without `dim`, not `dim` 4"):
        Index.open(tmp_path / "idx", encoder, dim=4)
    rebuilt = build(corpus, encoder, tmp_path / "idx", pca=16, rebuild=True)
    assert rebuilt.transform.dim_out == 16
