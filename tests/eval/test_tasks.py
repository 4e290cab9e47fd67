from __future__ import annotations

import re

import pytest
from helpers import CORPUS, write_beir

from ragkit.errors import RagkitError
from ragkit.eval import LocalRetrievalTask, load_task, subsample
from ragkit.eval.tasks import GENERIC_QUERY_INSTRUCTION, mteb_instruction


def test_a_local_folder_is_an_mteb_retrieval_task(beir_dir):
    from mteb.abstasks.retrieval import AbsTaskRetrieval

    task = load_task(beir_dir)
    assert isinstance(task, LocalRetrievalTask) and isinstance(task, AbsTaskRetrieval)
    task.load_data()
    data = task.dataset["default"]["test"]
    assert data["corpus"]["id"] == [d["_id"] for d in CORPUS]
    assert data["queries"]["id"] == ["q1", "q2", "q3"]
    assert task.metadata.main_score == "ndcg_at_10"
    assert task.ignore_identical_ids is False


def test_folder_named_like_an_mteb_task_borrows_its_query_instruction(tmp_path):

    import mteb

    assert mteb_instruction("scifact") == mteb.get_task("SciFact").metadata.prompt["query"]
    assert mteb_instruction("msmarco-subset") == mteb.get_task("MSMARCO").metadata.prompt["query"]
    assert mteb_instruction("cranfield") is None
    task = load_task(write_beir(tmp_path / "cranfield"))
    assert task.metadata.prompt == {"query": GENERIC_QUERY_INSTRUCTION}
    task = load_task(write_beir(tmp_path / "mine"), query_instruction="Find the answer")
    assert task.metadata.prompt == {"query": "Find the answer"}


def test_mteb_tasks_by_name_without_downloading():
    task = load_task("SciFact")
    assert task.metadata.name == "SciFact" and not task.data_loaded


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("SciFakt", "unknown task 'SciFakt': did you mean SciFact"),
        ("nfcorpus", "unknown task 'nfcorpus': did you mean NFCorpus"),
        ("Banking77Classification", "is a Classification task; ragkit scores retrieval tasks"),
        ("/no/such/beir", "task folder /no/such/beir does not exist"),
    ],
)
def test_bad_task_names_get_suggestions(spec, message):
    with pytest.raises(RagkitError, match=re.escape(message)):
        load_task(spec)


def test_a_folder_that_is_not_beir(tmp_path):
    with pytest.raises(RagkitError, match="is not a BEIR folder"):
        load_task(tmp_path)


def test_subsample_keeps_every_judged_document(beir_dir):
    task = load_task(beir_dir)
    cut = subsample(task, max_docs=4, seed=0)["default/test"]
    ids = task.dataset["default"]["test"]["corpus"]["id"]
    judged = {"d1", "d4", "d2", "d6", "d3"}
    assert (cut.kept, cut.total, cut.judged) == (5, 6, 5)  # 5 judged documents > 4: all kept, no others
    assert set(ids) == judged
    assert "subsampled: 5 of 6 documents, all 5 judged ones kept" in cut.describe()


def test_subsample_fills_up_with_a_seeded_sample(tmp_path):

    corpus = [{"_id": f"d{i}", "text": f"document {i}"} for i in range(100)]
    folder = write_beir(
        tmp_path / "big", corpus=corpus, queries=[{"_id": "q", "text": "x"}], qrels=[("q", "d7", 1)]
    )
    picks = []
    for _ in range(2):
        task = load_task(folder)
        subsample(task, max_docs=10, seed=3)
        picks.append(task.dataset["default"]["test"]["corpus"]["id"])
    assert picks[0] == picks[1] and len(picks[0]) == 10 and "d7" in picks[0]
    assert picks[0] == sorted(picks[0], key=lambda d: int(d[1:]))  # corpus order is kept
    task = load_task(folder)
    assert subsample(task, max_docs=1000) == {}  # small enough already


def test_max_docs_below_the_judged_count_of_an_all_judged_corpus_cuts_nothing_and_flags_nothing(tmp_path):
    corpus = CORPUS[:5]
    qrels = [("q1", d["_id"], 1) for d in corpus]
    folder = write_beir(tmp_path / "judged", corpus=corpus, qrels=qrels)
    task = load_task(folder)
    assert subsample(task, max_docs=3, seed=0) == {}  # before: flagged "subsampled: 5 of 5 documents"
    assert len(task.dataset["default"]["test"]["corpus"]) == 5
