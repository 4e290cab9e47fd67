"""ragkit's scores are mteb's, and mteb's agree with an independent pytrec_eval computation."""

from __future__ import annotations

import numpy as np
import pytest
import pytrec_eval
from helpers import shared_folder, write_beir

from ragkit.eval import evaluate, load_task, read_beir


class FixedRanking:
    """A SearchProtocol that returns a given run, whatever it is asked."""

    label = "fixed"

    def __init__(self, run: dict[str, dict[str, float]]):
        from mteb.models.model_meta import ModelMeta

        self.run = run
        self.mteb_model_meta = ModelMeta.create_empty({"name": "test/fixed-ranking"})

    def index(self, corpus, **kwargs):
        pass

    def search(self, queries, *, top_k, **kwargs):
        return {qid: dict(self.run.get(qid, {})) for qid in queries["id"]}


def pytrec_scores(qrels, run) -> dict[str, float]:
    """nDCG@10, MRR@10, Recall@100 and MAP@100 averaged over the judged queries, by pytrec_eval."""
    top = {q: dict(sorted(docs.items(), key=lambda kv: -kv[1])[:10]) for q, docs in run.items()}
    full = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.100", "map_cut.100"}).evaluate(run)
    rr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(top)
    mean = lambda per_query, key: float(np.mean([per_query.get(q, {}).get(key, 0.0) for q in qrels]))  # noqa: E731
    return {
        "ndcg_at_10": mean(full, "ndcg_cut_10"),
        "mrr_at_10": mean(rr, "recip_rank"),
        "recall_at_100": mean(full, "recall_100"),
        "map_at_100": mean(full, "map_cut_100"),
    }


def random_run(data, seed: int) -> dict[str, dict[str, float]]:
    """A run that ranks each query's judged documents among 200 random others, in random order."""
    rng = np.random.default_rng(seed)
    ids = [d["id"] for d in data.corpus]
    run = {}
    for qid, judged in data.qrels.items():
        picked = set(rng.choice(ids, 200, replace=False)) | set(judged)
        run[qid] = {doc: float(rng.random()) for doc in sorted(picked)}
    return run


@pytest.mark.parametrize("folder", ["cranfield", "scifact"])
def test_ndcg_and_friends_equal_pytrec_eval_on_a_fixed_ranking(folder, tmp_path):
    path = shared_folder(folder)
    data = read_beir(path)
    run = random_run(data, seed=1)
    (row,) = evaluate([FixedRanking(run)], [load_task(path)], output=None)
    expected = pytrec_scores(data.qrels, run)
    assert row.queries == len(data.qrels)
    for key, value in expected.items():
        assert row.scores[key] == pytest.approx(value, abs=1e-5), key  # mteb rounds to 5 decimals


def test_a_hand_computed_ndcg(beir_dir):
    # trec_eval's nDCG, which mteb reports, has linear gains. q1: d4 (grade 1) first, d1 (grade 2)
    # third: DCG = 1/log2(2) + 2/log2(4) = 2, ideal = 2/log2(2) + 1/log2(3). q2: d2 first (1.0).
    # q3: d3 not retrieved (0.0).
    run = {"q1": {"d4": 0.9, "d5": 0.8, "d1": 0.7}, "q2": {"d2": 0.9}, "q3": {"d5": 0.3}}
    (row,) = evaluate([FixedRanking(run)], [load_task(beir_dir)], output=None)
    q1 = 2 / (2 + 1 / np.log2(3))
    assert row.scores["ndcg_at_10"] == pytest.approx((q1 + 1.0 + 0.0) / 3, abs=1e-5)
    assert row.scores["mrr_at_10"] == pytest.approx((1 + 1 + 0) / 3, abs=1e-5)


def test_a_query_id_equal_to_a_document_id_keeps_that_document(tmp_path):
    # Cranfield numbers queries and documents from 1: dropping identical ids would drop real answers.

    folder = write_beir(
        tmp_path / "ids",
        corpus=[{"_id": "1", "text": "a"}, {"_id": "2", "text": "b"}],
        queries=[{"_id": "1", "text": "q"}],
        qrels=[("1", "1", 1)],
    )
    (row,) = evaluate([FixedRanking({"1": {"1": 0.9, "2": 0.1}})], [load_task(folder)], output=None)
    assert row.scores["ndcg_at_10"] == pytest.approx(1.0)
