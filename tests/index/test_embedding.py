"""The one embed loop: units commit whole, progress moves with every encode batch."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import SENTENCES, tiny_encoder

from ragkit.corpus import Document, list_files
from ragkit.index import embedding
from ragkit.index.docstore import Docstore
from ragkit.index.embedding import EmbedProgress, EmbedUnit, embed_units
from ragkit.retrieval.chunking import ChunkingConfig


class Recorder(EmbedProgress):
    """The bar's updates, kept to look at."""

    def __init__(self, unit: str, total: int) -> None:
        super().__init__(unit, total, enabled=False)
        self.seen: list[tuple[int, int, int]] = []  # (units done, chunks, tokens) at each update

    def _show(self) -> None:
        super()._show()
        self.seen.append((self.done, self.chunks, self.tokens))


@pytest.fixture
def store(tmp_path):
    store = Docstore(tmp_path / "docstore.sqlite")
    yield store
    store.close()


def test_progress_moves_with_every_batch_and_each_file_commits_whole(store, monkeypatch):
    monkeypatch.setattr(embedding, "EMBED_GROUP", 8)
    encoder = tiny_encoder()
    files = [
        EmbedUnit(f"f{i}.txt", f"h{i}", [Document(f"f{i}.txt", " ".join(SENTENCES[i : i + 3]) * 3)])
        for i in range(5)
    ]
    with Recorder("files", len(files)) as progress:
        totals = embed_units(
            files, encoder, store, ChunkingConfig(chunk_size=16, overlap=0), progress, batch_size=2
        )
    assert store.file_hashes() == {f"f{i}.txt": f"h{i}" for i in range(5)}
    assert totals.chunks == store.counts().chunks > 8  # several groups of 8
    chunk_updates = [chunks for _, chunks, _ in progress.seen]
    assert (
        chunk_updates == sorted(chunk_updates) and len(set(chunk_updates)) >= totals.chunks // 2
    )  # per batch of 2
    assert progress.done == 5 and progress.seen[-1][1] == totals.chunks


def test_a_single_large_file_counts_its_documents(store, monkeypatch):
    monkeypatch.setattr(embedding, "EMBED_GROUP", 4)
    encoder = tiny_encoder()
    documents = [Document(f"big.jsonl#{i}", SENTENCES[i % len(SENTENCES)]) for i in range(20)]
    progress = Recorder("files", 1)

    def units():
        progress.count_documents(len(documents))  # what the folder build does for a one-file corpus
        yield EmbedUnit("big.jsonl", "h", documents)

    with progress:
        embed_units(units(), encoder, store, ChunkingConfig(), progress)
    done = [d for d, _, _ in progress.seen]
    assert progress.unit == "documents" and progress.total == 20 and done[-1] == 20
    assert len(set(done)) >= 5  # the bar moved document by document, not 0/1 until the end
    assert store.file_hashes() == {"big.jsonl": "h"} and store.counts().chunks == 20


def test_the_time_left_comes_from_the_tokens_per_unit_so_far(monkeypatch):
    progress = EmbedProgress("files", 10, enabled=False)
    with progress:
        clock = iter([100.0, 110.0])
        monkeypatch.setattr(embedding.time, "perf_counter", lambda: next(clock))
        progress.started = 90.0
        progress.embedded(50, 1000)  # at 100.0: 1000 tokens in 10 s
        progress.advance(2)  # at 110.0: 1000 tokens in 20 s (50/s), 500 a file, 8 files (4000 tokens) left
        fields = progress.bar.tasks[0].fields
    assert fields["rate"] == "50" and fields["left"] == "0:01:20"


def test_an_empty_file_leaves_and_an_empty_document_stays(store):
    encoder = tiny_encoder()
    store.replace_file("old.txt", "h0", 1, [], np.zeros((0, encoder.dim), dtype=np.float32))
    units = [
        EmbedUnit("old.txt", "h1", []),  # the file now yields nothing: what was stored goes
        EmbedUnit("doc:x", "hx", [Document("x", "")], remove_if_empty=False),
    ]
    with EmbedProgress("files", 2, enabled=False) as progress:
        embed_units(units, encoder, store, ChunkingConfig(), progress)
    assert store.file_hashes() == {"doc:x": "hx"}


def _chunk_rows(index_dir):
    from ragkit.index import Retriever

    retriever = Retriever.load(index_dir, encoder=tiny_encoder())
    try:
        store = retriever.snapshot.store
        ids = store.ids()
        rows = [(c["path"], c["start"], c["end"], c["text"]) for c in store.chunks_at(ids)]
        return rows, store.vectors_at(ids, retriever.encoder.dim)
    finally:
        retriever.close()


def test_a_large_file_is_stored_in_parts_and_an_interrupted_build_resumes_after_them(tmp_path, monkeypatch):
    """A 50 MB one-line file takes hours to embed on a CPU: what is done is kept as it goes."""
    from ragkit.index import Index

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "one-line.txt").write_text(" ".join(SENTENCES * 12))  # one line, no breaks
    (corpus / "small.txt").write_text("a small file beside it")
    chunking = ChunkingConfig(chunk_size=16, overlap=4)
    monkeypatch.setattr(embedding, "EMBED_GROUP", 4)
    monkeypatch.setattr(embedding, "PART_CHUNKS", 4)
    encoder = tiny_encoder()
    real, calls = encoder.encode_documents, []

    def dies_on_the_fourth_call(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(encoder, "encode_documents", dies_on_the_fourth_call)
    with pytest.raises(KeyboardInterrupt):
        Index.build(corpus, encoder, tmp_path / "idx", chunking=chunking, show_progress=False)
    monkeypatch.setattr(encoder, "encode_documents", real)
    store = Docstore(tmp_path / "idx.building" / "docstore.sqlite")
    big = next(f for f in list_files(corpus) if f.relpath == "one-line.txt")
    assert store.stored_part(big.relpath, big.content_hash) == 12  # three calls of 4 chunks, kept
    assert store.file_hashes() == {} and not (tmp_path / "idx").exists()  # nothing committed
    store.close()
    report = Index.build(corpus, encoder, tmp_path / "idx", chunking=chunking, show_progress=False)
    whole = Index.build(corpus, tiny_encoder(), tmp_path / "fresh", chunking=chunking, show_progress=False)
    assert report.chunks_embedded == whole.chunks_embedded - 12
    resumed, vectors = _chunk_rows(tmp_path / "idx")
    fresh, fresh_vectors = _chunk_rows(tmp_path / "fresh")
    assert resumed == fresh
    np.testing.assert_allclose(vectors, fresh_vectors, atol=1e-5)


def test_a_whole_file_written_over_its_parts_replaces_them(store):
    """A file stored in parts by an interrupted local build, then embedded whole (on Ray): no chunk twice."""
    from ragkit.retrieval.chunking import Chunk

    chunks = [Chunk("d", "", f"chunk {i}", i, i + 1, {}, 1) for i in range(5)]
    vectors = np.eye(5, 4, dtype=np.float32)
    store.add_part("big.txt", "h1", chunks[:2], vectors[:2])
    assert store.stored_part("big.txt", "h1") == 2 and store.stored_part("big.txt", "other") == 0
    store.replace_file("big.txt", "h1", 1, chunks, vectors)
    assert store.counts().chunks == 5 and store.stored_part("big.txt", "h1") == 0
    store.add_part("big.txt", "h2", chunks[:3], vectors[:3])  # a new version in parts, then its rest
    store.finish_parts("big.txt", "h2", 1, chunks[3:], vectors[3:])
    assert store.counts().chunks == 5 and store.file_hashes() == {"big.txt": "h2"}
    assert [c["text"] for c in store.chunks_at(store.ids())] == [c.text for c in chunks]
