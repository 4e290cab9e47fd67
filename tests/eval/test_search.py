"""Dense and index-backed search, end to end through mteb's retrieval evaluation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import shared_folder, tiny_encoder, write_beir

from ragkit.corpus import document_text
from ragkit.eval import DenseSearch, IndexSearch, RagkitModel, evaluate, load_task
from ragkit.eval.bm25 import BM25Search
from ragkit.eval.tasks import subsample
from ragkit.index import Index, Retriever
from ragkit.retrieval.chunking import ChunkingConfig


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("RAGKIT_HOME", str(tmp_path / "home"))


def test_tiny_model_on_a_real_folder_and_the_cache():

    folder = shared_folder("cranfield")
    model = RagkitModel(tiny_encoder())

    def run():
        task = load_task(folder)
        subsample(task, max_docs=1000, seed=0)  # 924 judged + 76 others
        search = DenseSearch(model, show_progress=False)
        (row,) = evaluate([search], [task], output=None)
        return row, search

    first, search = run()
    assert (first.queries, first.documents) == (225, 1000) and search.cached_documents == 0
    assert 0.0 <= first.ndcg_at_10 <= 1.0 and first.scores["recall_at_100"] > 0
    second, search = run()
    assert search.cached_documents == 1000  # nothing embedded again
    assert second.scores == first.scores

    with torch.no_grad():  # new weights in the same object: the cache must not serve old vectors
        model.model.model.embed_tokens.weight.mul_(1.5)
    model._fingerprint = None
    _, search = run()
    assert search.cached_documents == 0


def test_a_document_length_cap_changes_vectors_and_cache_key(beir_dir):
    model = RagkitModel(tiny_encoder())
    task = load_task(beir_dir)
    task.load_data()
    corpus = task.dataset["default"]["test"]["corpus"]
    full, capped = (
        DenseSearch(model, show_progress=False),
        DenseSearch(model, max_doc_tokens=4, show_progress=False),
    )
    full.index(corpus, task_metadata=task.metadata, hf_split="test", hf_subset="default")
    capped.index(corpus, task_metadata=task.metadata, hf_split="test", hf_subset="default")
    assert capped.cached_documents == 0  # a different key, not the uncapped vectors
    expected = model.model.encode([document_text(d["title"], d["text"]) for d in corpus], max_length=4)
    np.testing.assert_allclose(capped.faiss_index.reconstruct_n(0, len(corpus)), expected, atol=1e-6)


def test_pca_runs_through_the_index_transform(beir_dir):
    model = RagkitModel(tiny_encoder())
    search = DenseSearch(model, pca=4, show_progress=False)
    (row,) = evaluate([search], [load_task(beir_dir)], output=None)
    assert search.transform.kind == "pca" and search.faiss_index.d == 4
    assert 0.0 <= row.ndcg_at_10 <= 1.0


def test_index_search_ranks_like_dense_search_when_a_document_is_one_chunk(tmp_path):
    corpus = [
        {"_id": f"d{i}", "text": f"passage number {i} about {topic}"}
        for i, topic in enumerate(["rivers", "cities", "bread", "planets", "music", "trees", "rain", "ships"])
    ]
    queries = [
        {"_id": "q1", "text": "rivers"},
        {"_id": "q2", "text": "bread"},
        {"_id": "q3", "text": "ships"},
    ]
    folder = write_beir(
        tmp_path / "flat",
        corpus=corpus,
        queries=queries,
        qrels=[("q1", "d0", 1), ("q2", "d2", 1), ("q3", "d7", 1)],
    )
    encoder = tiny_encoder()
    Index.build(
        folder / "corpus.jsonl",
        encoder,
        tmp_path / "idx",
        spec="flat",
        chunking=ChunkingConfig(512, 0),
        show_progress=False,
    )
    indexed = IndexSearch(Retriever.load(tmp_path / "idx", encoder=encoder), mode="dense")
    dense = DenseSearch(RagkitModel(encoder, task_instructions=False), show_progress=False)
    by_index, by_dense = evaluate([indexed, dense], [load_task(folder)], output=None)
    assert by_index.scores == by_dense.scores


def test_index_search_refuses_an_index_of_another_corpus(beir_dir, tmp_path):

    from ragkit.errors import RagkitError

    other = write_beir(tmp_path / "other", corpus=[{"_id": "x1", "text": "unrelated"}], queries=[], qrels=[])
    encoder = tiny_encoder()
    Index.build(other / "corpus.jsonl", encoder, tmp_path / "idx", spec="flat", show_progress=False)
    search = IndexSearch(Retriever.load(tmp_path / "idx", encoder=encoder))
    with pytest.raises(RagkitError, match=r"6 of the task's 6 documents .* are not in the index"):
        evaluate([search], [load_task(beir_dir)], output=None)


def test_eval_of_an_index_equals_eval_of_the_encoder_on_a_titled_corpus(tmp_path):
    """SciFact's documents have titles: both paths embed `document_text(title, text)`, so the scores agree.

    Before, `ragkit index` embedded "title\\ntext" and `ragkit eval -m` "title text".
    """
    from ragkit.eval.beir import read_beir

    data = read_beir(shared_folder("scifact"))
    queries = list(data.queries)[:20]
    judged = {doc for q in queries for doc in data.qrels[q]}
    docs = [d for d in data.corpus if d["id"] in judged] + [d for d in data.corpus if d["id"] not in judged][
        :60
    ]
    assert all(d["title"] for d in docs)
    folder = write_beir(
        tmp_path / "scifact",
        corpus=[{"_id": d["id"], "title": d["title"], "text": d["text"]} for d in docs],
        queries=[{"_id": q, "text": data.queries[q]} for q in queries],
        qrels=[(q, doc, grade) for q in queries for doc, grade in data.qrels[q].items()],
    )
    encoder = tiny_encoder()
    encoder.config.max_length = 128  # both paths truncate the same embedded text
    Index.build(
        folder / "corpus.jsonl",
        encoder,
        tmp_path / "idx",
        spec="flat",
        chunking=ChunkingConfig(100_000, 0),  # one chunk per document
        show_progress=False,
    )
    retriever = Retriever.load(tmp_path / "idx", encoder=encoder)
    indexed = IndexSearch(retriever, mode="dense")
    dense = DenseSearch(RagkitModel(encoder, task_instructions=False), show_progress=False, cache=False)
    lexical, bm25 = IndexSearch(retriever, mode="bm25"), BM25Search()
    by_index, by_dense, by_index_bm25, by_bm25 = evaluate(
        [indexed, dense, lexical, bm25], [load_task(folder)], output=None
    )
    assert by_index.scores == pytest.approx(by_dense.scores, abs=1e-6)
    assert by_index.ndcg_at_10 > 0  # a real ranking, not two empty ones
    # The index's BM25 part ranks the same texts as `ragkit eval --bm25`: the same scores.
    assert by_index_bm25.scores == pytest.approx(by_bm25.scores, abs=1e-6)


def test_fusion_at_the_extremes_is_each_side_and_shared_runs_search_once(beir_dir, monkeypatch):
    from ragkit.eval.bm25 import BM25Search
    from ragkit.eval.search import FusionSearch

    model = RagkitModel(tiny_encoder())
    dense, lexical = DenseSearch(model, show_progress=False), BM25Search()
    task = load_task(beir_dir)
    alone = evaluate([dense, lexical], [task], output=None)
    runs: dict = {}
    fused = [FusionSearch(dense, lexical, method="rrf", weight=w, runs=runs) for w in (1.0, 0.0, 0.5)]
    calls = []
    monkeypatch.setattr(BM25Search, "index", lambda self, *a, **k: calls.append("index"))
    runs_before = evaluate(fused[:1], [task], output=None)  # the first fused system indexes both sides...
    assert calls == ["index"]
    later = evaluate(fused[1:], [task], output=None)  # ...the others reuse its runs
    assert calls == ["index"]
    rows = runs_before + later
    assert rows[0].ndcg_at_10 == pytest.approx(alone[0].ndcg_at_10)  # weight 1: the dense ranking
    assert rows[1].ndcg_at_10 == pytest.approx(alone[1].ndcg_at_10)  # weight 0: BM25's
    assert fused[2].label == f"{dense.label} + bm25, rrf 0.5"
