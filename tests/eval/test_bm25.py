from __future__ import annotations

import mteb
import pytest
from helpers import shared_folder

from ragkit.eval import evaluate, load_task
from ragkit.eval.bm25 import BM25Search


def test_same_scores_as_mtebs_bm25_baseline_on_a_real_folder():
    folder = shared_folder("cranfield")
    ours, theirs = evaluate(
        [BM25Search(), mteb.get_model("baseline/bm25s")], [load_task(folder)], output=None
    )
    assert ours.scores == pytest.approx(theirs.scores, abs=1e-5)
    assert ours.ndcg_at_10 > 0.3  # lexical matching works on Cranfield's technical queries


def test_ranks_the_matching_document_first_and_tolerates_unknown_words(beir_dir):
    search = BM25Search()
    task = load_task(beir_dir)
    task.load_data()
    data = task.dataset["default"]["test"]
    search.index(data["corpus"], task_metadata=task.metadata, hf_split="test", hf_subset="default")
    from datasets import Dataset

    queries = Dataset.from_dict({"id": ["a", "b"], "text": ["longest river Africa", "zzzz qqqq"]})
    results = search.search(
        queries, task_metadata=task.metadata, hf_split="test", hf_subset="default", top_k=3
    )
    assert next(iter(results["a"])) == "d1"
    assert list(results["a"].values()) == sorted(results["a"].values(), reverse=True)
    assert results["b"] == {}
