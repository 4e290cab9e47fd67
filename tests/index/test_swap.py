"""A rebuild's swap into place: a reader always finds an index, and a rerun finishes a killed swap."""

from __future__ import annotations

import pytest
from helpers import EXAMPLE_CORPUS, tiny_encoder

from ragkit.index import Index, Retriever
from ragkit.index import build as build_module
from ragkit.index.workdir import finish_interrupted_swap
from ragkit.io import atomic


def _held(index_dir, encoder):
    retriever = Retriever.load(index_dir, encoder=encoder)
    try:
        return set(retriever.store.file_hashes()), retriever.manifest.updated
    finally:
        retriever.close()


@pytest.fixture
def built(tmp_path):
    encoder = tiny_encoder()
    Index.build(EXAMPLE_CORPUS, encoder, tmp_path / "idx", show_progress=False)
    return encoder, tmp_path / "idx"


def test_killed_right_after_the_exchange_the_new_index_answers_and_the_old_is_cleared(built, monkeypatch):
    encoder, index_dir = built
    _, first = _held(index_dir, encoder)
    monkeypatch.setattr(atomic, "_discard", lambda path: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        Index.build(EXAMPLE_CORPUS, encoder, index_dir, rebuild=True, show_progress=False)
    monkeypatch.undo()
    files, updated = _held(index_dir, encoder)  # a reader finds an index: the new one
    assert updated > first and len(files) == 8
    assert (index_dir.with_name("idx.building") / "manifest.json").is_file()  # the old one, moved out
    report = Index.build(EXAMPLE_CORPUS, encoder, index_dir, show_progress=False)  # the next run
    assert report.chunks_embedded == 0 and not index_dir.with_name("idx.building").exists()


def test_killed_before_the_swap_a_rerun_swaps_the_finished_build_in_without_embedding_again(
    built, monkeypatch
):
    encoder, index_dir = built
    _, first = _held(index_dir, encoder)
    monkeypatch.setattr(
        build_module, "swap_into_place", lambda new, old: (_ for _ in ()).throw(KeyboardInterrupt)
    )
    with pytest.raises(KeyboardInterrupt):
        Index.build(EXAMPLE_CORPUS, encoder, index_dir, rebuild=True, show_progress=False)
    monkeypatch.undo()
    assert _held(index_dir, encoder)[1] == first  # still the old one, whole
    report = Index.build(EXAMPLE_CORPUS, encoder, index_dir, rebuild=True, show_progress=False)
    assert report.chunks_embedded == 0  # the finished build went in; nothing embedded twice
    assert _held(index_dir, encoder)[1] > first and not index_dir.with_name("idx.building").exists()


def test_two_renames_killed_between_them_bring_the_old_index_back(built):
    encoder, index_dir = built
    before = _held(index_dir, encoder)
    index_dir.rename(index_dir.with_name("idx.old-4242"))  # what a kill between the renames leaves
    finish_interrupted_swap(index_dir)
    assert _held(index_dir, encoder) == before
    assert not list(index_dir.parent.glob("idx.old-*"))


def test_a_swap_exchanges_in_one_step_where_the_os_can(tmp_path):
    old, new = tmp_path / "index", tmp_path / "index.building"
    old.mkdir()
    (old / "which").write_text("old")
    new.mkdir()
    (new / "which").write_text("new")
    atomic.swap_into_place(new, old)
    assert (old / "which").read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["index"]


def test_a_rebuild_killed_right_after_the_exchange_is_finished_by_its_rerun_not_done_again(
    built, monkeypatch
):
    encoder, index_dir = built
    monkeypatch.setattr(atomic, "_discard", lambda path: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        Index.build(EXAMPLE_CORPUS, encoder, index_dir, rebuild=True, show_progress=False)
    monkeypatch.undo()
    _, new = _held(index_dir, encoder)
    report = Index.build(
        EXAMPLE_CORPUS, encoder, index_dir, rebuild=True, show_progress=False
    )  # the same command
    assert report.chunks_embedded == 0 and _held(index_dir, encoder)[1] == new
    assert not index_dir.with_name("idx.building").exists()
    # A rebuild asked with other settings is a rebuild still.
    report = Index.build(EXAMPLE_CORPUS, encoder, index_dir, rebuild=True, spec="hnsw", show_progress=False)
    assert report.chunks_embedded > 0 and "HNSW" in report.factory


def test_an_interrupted_rebuild_resumes_from_what_it_embedded(built, monkeypatch):
    from ragkit.index import embedding

    encoder, index_dir = built
    commits = []
    real = embedding._commit

    def commit_then_die(state, store, dim):
        real(state, store, dim)
        commits.append(state.unit.key)
        if len(commits) == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(embedding, "_commit", commit_then_die)
    with pytest.raises(KeyboardInterrupt):
        Index.build(EXAMPLE_CORPUS, encoder, index_dir, rebuild=True, show_progress=False, batch_size=1)
    monkeypatch.undo()
    report = Index.build(EXAMPLE_CORPUS, encoder, index_dir, rebuild=True, show_progress=False)
    assert report.resumed == 3 and report.counts.files == 8
