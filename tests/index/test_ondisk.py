"""IVF lists on disk: the same answers as in memory, a file per generation that updates never touch
once written, an index directory that can move, and nothing printed on stdout."""

from __future__ import annotations

import hashlib
import shutil

import faiss
import pytest

from ragkit.errors import RagkitError
from ragkit.index import ChunkingConfig, Index, Retriever
from ragkit.index.faiss_index import training_sample_size
from ragkit.index.ondisk import TRAINING_BYTES, is_on_disk, read_index

CHUNKING = ChunkingConfig(chunk_size=48, overlap=8)
SPEC = "IVF2,Flat"  # 2 lists (78+ vectors to train), both probed: exact, comparable answers
QUERIES = ("wing", "heat transfer", "boundary layer", "supersonic flow over a flat plate")


def build(corpus, encoder, index_dir, **options):
    return Index.build(corpus, encoder, index_dir, chunking=CHUNKING, show_progress=False, **options)


def answers(retriever):
    hits = [retriever.search(q, k=5, mode="dense") for q in QUERIES]
    return [[(h.chunk_id, round(h.score, 4)) for h in q] for q in hits]


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_lists_on_disk_answer_like_lists_in_memory(corpus, encoder, tmp_path, capfd):
    in_memory = build(corpus, encoder, tmp_path / "ram", spec=SPEC)
    on_disk = build(corpus, encoder, tmp_path / "disk", spec=SPEC, on_disk=True)
    assert on_disk.counts == in_memory.counts and on_disk.factory == in_memory.factory == SPEC
    files = sorted(p.name for p in (tmp_path / "disk").iterdir())
    assert "index-1.ivfdata" in files and not any(name.endswith(".fill") for name in files)
    assert not (tmp_path / "ram" / "index-1.ivfdata").exists()

    reader = Retriever.load(tmp_path / "disk", encoder=encoder)
    assert is_on_disk(reader.snapshot.index)
    assert reader.manifest.index.on_disk is True
    assert answers(reader) == answers(Retriever.load(tmp_path / "ram", encoder=encoder))
    # faiss prints which file it maps and each growth of it; ragkit's stdout is for results only
    assert capfd.readouterr().out == ""


def test_a_moved_index_directory_finds_its_lists(corpus, encoder, tmp_path):
    build(corpus, encoder, tmp_path / "disk", spec=SPEC, on_disk=True)
    before = answers(Retriever.load(tmp_path / "disk", encoder=encoder))
    shutil.move(tmp_path / "disk", tmp_path / "elsewhere")
    assert answers(Retriever.load(tmp_path / "elsewhere", encoder=encoder)) == before


def test_an_update_writes_the_next_lists_file_and_leaves_the_last_one_untouched(corpus, encoder, tmp_path):
    build(corpus, encoder, tmp_path / "disk", spec=SPEC, on_disk=True)
    first_lists = tmp_path / "disk" / "index-1.ivfdata"
    first_digest = digest(first_lists)
    reader = Retriever.load(tmp_path / "disk", encoder=encoder)
    before = answers(reader)

    (corpus / "1.txt").write_text("a changed document about supersonic flow over a flat plate")
    (corpus / "2.txt").unlink()
    report = build(corpus, encoder, tmp_path / "disk")  # no options: the on-disk setting is kept
    assert report.in_place and not report.retrained and report.vectors_added == 1
    assert digest(first_lists) == first_digest  # readers of generation 1 map it
    assert answers(reader) == before
    assert is_on_disk(read_index(tmp_path / "disk" / "index-2.faiss"))

    reader.refresh()
    fresh = build(corpus, encoder, tmp_path / "fresh", spec=SPEC, on_disk=True)
    assert reader.manifest.counts == fresh.counts
    got, want = answers(reader), answers(Retriever.load(tmp_path / "fresh", encoder=encoder))
    assert [[s for _, s in q] for q in got] == [[s for _, s in q] for q in want]  # ids differ, scores agree

    (corpus / "3.txt").write_text("another change")
    build(corpus, encoder, tmp_path / "disk")
    assert not first_lists.exists()  # two generations on, nobody opens it any more
    assert faiss.read_index(str(tmp_path / "disk" / "index-3.faiss"), faiss.IO_FLAG_ONDISK_SAME_DIR).ntotal


def test_on_disk_is_recorded_and_refused_where_it_cannot_apply(corpus, encoder, tmp_path):
    build(corpus, encoder, tmp_path / "ram", spec=SPEC)
    with pytest.raises(RagkitError, match="built without `on_disk`"):
        build(corpus, encoder, tmp_path / "ram", on_disk=True)
    with pytest.raises(RagkitError, match="`on_disk` keeps the inverted lists of an IVF index"):
        build(corpus, encoder, tmp_path / "hnsw", spec="hnsw", on_disk=True)
    assert not (tmp_path / "hnsw").exists()


def test_on_disk_training_memory_is_capped_and_keeps_faiss_floor():
    assert training_sample_size("IVF4000,Flat") == 256 * 4000
    capped = training_sample_size("IVF4000,Flat", d=768, on_disk=True)
    assert capped * 768 * 4 <= TRAINING_BYTES and capped >= 39 * 4000
    assert training_sample_size("IVF100000,Flat", d=768, on_disk=True) == 39 * 100_000
    assert training_sample_size("IVF16,Flat", d=768, on_disk=True) == 256 * 16
