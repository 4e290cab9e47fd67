"""Updates in place: only the change is written, readers keep their generation, a kill -9 loses nothing,
and the FAISS index / PCA are trained again only by the policy."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time

import faiss
from helpers import ragkit_command

from ragkit import Encoder
from ragkit.index import ChunkingConfig, Index, Retriever
from ragkit.index.generation import RETRAIN_FACTOR

CHUNKING = ChunkingConfig(chunk_size=48, overlap=8)


def build(corpus, encoder, index_dir, **options):
    return Index.build(corpus, encoder, index_dir, chunking=CHUNKING, show_progress=False, **options)


def answers(retriever, queries=("wing", "heat transfer", "boundary layer")):
    return [
        [(h.chunk_id, h.path, h.text, round(h.score, 5)) for h in retriever.search(q, k=5)] for q in queries
    ]


def test_an_update_writes_only_the_change_into_the_same_docstore(corpus, encoder, tmp_path):
    first = build(corpus, encoder, tmp_path / "idx")
    docstore = tmp_path / "idx" / "docstore.sqlite"
    inode = docstore.stat().st_ino
    (corpus / "1.txt").write_text("a changed document about supersonic flow over a flat plate")
    (corpus / "2.txt").unlink()
    report = build(corpus, encoder, tmp_path / "idx")
    assert report.in_place and report.generation == 2 and not report.retrained
    assert report.chunks_embedded == 1 and report.vectors_added == 1
    assert report.vectors_removed == first.counts.chunks - report.counts.chunks + 1
    assert docstore.stat().st_ino == inode  # the docstore was written in place, not copied
    index = faiss.read_index(str(tmp_path / "idx" / "index-2.faiss"))
    assert index.ntotal == report.counts.chunks == report.counts.vectors
    hit = Retriever.load(tmp_path / "idx", encoder=encoder).search(
        "supersonic flow flat plate", k=1, mode="bm25"
    )
    assert hit[0].path == "1.txt"

    unchanged = build(corpus, encoder, tmp_path / "idx")  # nothing changed: nothing is written
    assert unchanged.generation == 2 and unchanged.chunks_embedded == 0
    assert "nothing changed" in unchanged.summary()
    assert not (tmp_path / "idx" / "index-3.faiss").exists()


def test_readers_keep_their_generation_until_they_refresh(corpus, encoder, tmp_path):
    build(corpus, encoder, tmp_path / "idx")
    reader = Retriever.load(tmp_path / "idx", encoder=encoder)
    before = answers(reader)
    held = {h[1] for q in before for h in q}
    for path in sorted(corpus.iterdir()):
        if path.name in held:
            path.unlink()  # the files of the chunks the reader's answers hold
    (corpus / "new.txt").write_text("a new document on wings and heat transfer in a boundary layer")
    build(corpus, encoder, tmp_path / "idx")
    assert answers(reader) == before  # the removed chunks still read, the new one not seen
    assert reader.refresh()
    after = answers(reader)
    assert after != before and after == answers(Retriever.load(tmp_path / "idx", encoder=encoder))


def test_the_retrain_policy_keeps_pca_until_the_corpus_doubles(corpus, encoder, tmp_path):
    files = sorted(corpus.iterdir())
    for path in files[20:]:
        path.rename(tmp_path / path.name)  # held back: 20 files first
    first = build(corpus, encoder, tmp_path / "idx", pca=8)
    trained_on = first.counts.chunks
    pca_file = tmp_path / "idx" / "transform-1.pca"
    for path in files[20:25]:
        (tmp_path / path.name).rename(path)
    grown = build(corpus, encoder, tmp_path / "idx")
    assert grown.counts.chunks < RETRAIN_FACTOR * trained_on
    assert not grown.retrained and grown.vectors_added > 0 and pca_file.is_file()
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    assert manifest["trained"] == {"generation": 1, "vectors": trained_on}
    assert manifest["transform"]["file"] == "transform-1.pca"
    for path in files[25:]:
        (tmp_path / path.name).rename(path)
    doubled = build(corpus, encoder, tmp_path / "idx")
    assert doubled.counts.chunks >= RETRAIN_FACTOR * trained_on
    assert "x the" in doubled.retrained and "retrained" in doubled.summary()
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    assert manifest["trained"] == {"generation": 3, "vectors": doubled.counts.chunks}
    assert manifest["transform"]["file"] == "transform-3.pca"
    # Every chunk searchable under the new PCA: a chunk's own text finds it first.
    retriever = Retriever.load(tmp_path / "idx", encoder=encoder)
    hit = retriever.search("heat transfer", k=1)[0]
    assert retriever.search(f"{hit.text}", k=1, mode="dense")[0].chunk_id == hit.chunk_id


def test_a_killed_update_leaves_the_previous_generation_and_resumes(corpus, encoder, tmp_path):
    model = encoder.save(tmp_path / "tiny")
    loaded = Encoder.load(model)
    build(corpus, loaded, tmp_path / "idx")
    reader = Retriever.load(tmp_path / "idx", encoder=loaded)
    before = answers(reader)
    for i in range(60):  # enough new text that the update takes a while
        (corpus / f"new{i}.txt").write_text((corpus / "1.txt").read_text() * 4 + f" variant {i}")
    command = ragkit_command(
        "index",
        str(corpus),
        "--index",
        str(tmp_path / "idx"),
        "--model",
        str(model),
        "--chunk-size",
        "48",
        "--overlap",
        "8",
    )
    writer = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:  # kill it once some of the new generation is in the docstore
        with sqlite3.connect(f"file:{tmp_path / 'idx' / 'docstore.sqlite'}?mode=ro", uri=True) as db:
            if db.execute("SELECT COUNT(*) FROM chunks WHERE added = 2").fetchone()[0] > 0:
                break
        time.sleep(0.05)
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    assert writer.returncode == -signal.SIGKILL
    assert answers(reader) == before  # the loaded reader, and a new one, see generation 1
    assert answers(Retriever.load(tmp_path / "idx", encoder=loaded)) == before
    assert json.loads((tmp_path / "idx" / "manifest.json").read_text())["generation"] == 1

    report = build(corpus, loaded, tmp_path / "idx")
    assert report.resumed > 0 and report.added == 60 and report.generation == 2
    full = build(corpus, loaded, tmp_path / "full")
    assert report.counts == full.counts
    assert [[h[1:] for h in q] for q in answers(Retriever.load(tmp_path / "idx", encoder=loaded))] == [
        [h[1:] for h in q] for q in answers(Retriever.load(tmp_path / "full", encoder=loaded))
    ]
