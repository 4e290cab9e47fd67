"""Synthetic queries for a corpus without labels: round-trip filter, mined negatives, and the
`synthetic` stage end to end (with a mock generator, as mteb tests use mock tasks; the generator
itself: tests/querygen)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import TRAIN_SENTENCES, cranfield_passages, tiny_decoder_dir, tiny_encoder

from ragkit import Encoder, RagkitError
from ragkit.adapt import adapt, registry, stage_configs, synthetic
from ragkit.adapt.distill import DistillStage, read_prepared
from ragkit.adapt.synthetic import corpus_passages, mine_negatives, round_trip


def test_round_trip_keeps_a_query_when_bm25_ranks_its_passage_in_the_top_k():
    passages = cranfield_passages(300)
    own = [" ".join(passages[i].split()[3:10]) for i in range(0, 300, 30)]  # a passage's own words
    kept = round_trip(own, list(range(0, 300, 30)), passages, k=5)
    assert sum(kept) >= 8  # its own phrase finds a passage, bar a generic one
    wrong = round_trip(own, [i + 1 for i in range(0, 300, 30)], passages, k=5)  # claimed for a neighbour
    assert sum(wrong) <= 2
    assert round_trip(["zyxwv qwertz"], [0], passages, k=300) == [False]  # no word of the corpus
    strict, loose = round_trip(own, list(range(0, 300, 30)), passages, k=1), kept
    assert all(lo for st, lo in zip(strict, loose, strict=True) if st)  # top 1 is within top 5
    # The BM25 `ragkit eval` scores (through mteb's search protocol) keeps the same queries.
    from datasets import Dataset

    from ragkit.eval.bm25 import BM25Search

    bm25 = BM25Search()
    bm25.index(
        Dataset.from_dict({"id": [str(i) for i in range(300)], "text": passages}),
        task_metadata=None,
        hf_split="",
        hf_subset="",
    )
    query_rows = Dataset.from_dict({"id": [str(i) for i in range(len(own))], "text": own})
    ranked = bm25.search(query_rows, task_metadata=None, hf_split="", hf_subset="", top_k=5)
    assert kept == [str(i * 30) in ranked[str(q)] for q, i in enumerate(range(len(own)))]


def test_hard_negatives_come_from_the_encoders_ranks_after_the_skipped_top():
    encoder = tiny_encoder()
    passages = TRAIN_SENTENCES[:30]
    queries, sources = ["likes red boats", "paints old maps", "reads about tea"], [0, 5, 10]
    settings = dict(instruction="Find: ", skip=2, depth=12, count=3, seed=0, show_progress=False)
    negatives = mine_negatives(encoder, queries, sources, passages, **settings)
    documents = encoder.encode(passages)
    vectors = encoder.encode(queries, instruction="Find: ")
    for vector, source, mined in zip(vectors, sources, negatives, strict=True):
        ranking = [i for i in np.argsort(-(documents @ vector), kind="stable") if i != source]
        assert len(mined) == 3 and len(set(mined)) == 3 and source not in mined
        assert set(mined) <= set(ranking[2:12])  # never the top 2, never past rank 12
    again = mine_negatives(encoder, queries, sources, passages, **settings)
    assert again == negatives  # a resumed run mines the same


def test_corpus_passages_are_the_chunks_an_index_holds(tmp_path):
    (tmp_path / "a.md").write_text("# Boats\n\n" + " ".join(f"sail{i}" for i in range(600)))
    (tmp_path / "b.txt").write_text("Tea is green.")
    passages = corpus_passages(str(tmp_path), tiny_encoder().tokenizer)
    assert len(passages) > 2 and passages[-1] == "Tea is green."
    with pytest.raises(RagkitError, match="does not exist"):
        corpus_passages(str(tmp_path / "missing"), tiny_encoder().tokenizer)
    (tmp_path / "empty").mkdir()
    with pytest.raises(RagkitError, match="no documents"):
        corpus_passages(str(tmp_path / "empty"), tiny_encoder().tokenizer)


@pytest.fixture
def mock_generator(monkeypatch):
    """Writes the last two words of each passage as its query, with no LLM."""

    def generate(passages, settings, **kwargs):
        return [" ".join(p.rstrip(".").split()[-2:]) for p in passages]

    monkeypatch.setattr(synthetic, "generate_queries", generate)


@pytest.fixture
def sentence_corpus(tmp_path):
    """A tiny decoder, and a corpus folder of one training sentence per file."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i, sentence in enumerate(TRAIN_SENTENCES):
        (corpus / f"{i:02}.txt").write_text(sentence)
    return tiny_decoder_dir(tmp_path / "lm"), corpus


def test_the_synthetic_stage_trains_on_pairs_it_writes_for_a_corpus(
    mock_generator, sentence_corpus, tmp_path
):
    base, corpus = sentence_corpus
    configs = stage_configs(
        ["synthetic"],
        "cpu-smoke",
        data={"synthetic": str(corpus)},
        steps=4,
        batch_size=8,
        lr=1e-3,
        max_length=48,
    )
    configs["synthetic"].passages, configs["synthetic"].negative_depth = 40, 10
    configs["synthetic"].autocast = "bf16"  # cpu-small's "auto" on a bf16 CPU: mining runs under it too
    report = adapt(str(base), tmp_path / "enc", configs, show_progress=False)
    assert [r.stage for r in report.stages] == ["synthetic"]

    training = tmp_path / "enc" / "training"
    counts = json.loads((training / "1-synthetic-pairs.json").read_text())
    rows = [json.loads(line) for line in (training / "1-synthetic-pairs.jsonl").read_text().splitlines()]
    assert counts["passages"] == 48 and counts["written"] == 40 and counts["kept"] == len(rows) > 0
    for row in rows:
        assert row["positive"] in TRAIN_SENTENCES and row["query"] in row["positive"]
        assert row["negative"][0] in TRAIN_SENTENCES and row["negative"][0] != row["positive"]
    assert "synthetic" in (training / "log.csv").read_text()
    encoder = Encoder.load(tmp_path / "enc")
    assert encoder.config.query_instruction == "Given a query, retrieve documents relevant to it: "


def test_with_a_teacher_the_synthetic_stage_learns_its_scores_over_the_whole_corpus(
    mock_generator, sentence_corpus, tmp_path, monkeypatch
):
    """GPL: the teacher (BM25 here: no model to fetch) scores each synthetic query's candidates, mined
    from every passage of the corpus, and the student trains on those scores (the distill loss)."""
    base, corpus = sentence_corpus
    configs = stage_configs(
        ["synthetic"], "cpu-smoke", data={"synthetic": str(corpus)}, steps=3, batch_size=8, max_length=48
    )
    config = configs["synthetic"]
    config.passages, config.negative_depth, config.negatives = 12, 10, 2
    config.teacher, config.autocast = "bm25", "bf16"
    built = []

    class Spy(DistillStage):
        def __init__(self, encoder, config, world, lm_head=None):
            super().__init__(encoder, config, world, lm_head)
            built.append((config, *read_prepared(Path(config.data)), self.teacher))

    monkeypatch.setattr(registry, "DistillStage", Spy)
    report = adapt(str(base), tmp_path / "enc", configs, show_progress=False)

    assert [r.stage for r in report.stages] == ["synthetic"] and report.stages[0].steps == 3
    ((trained, queries, pool, teacher),) = built
    assert trained.teacher == "bm25" and trained.steps == 3 and trained.negatives == 2
    assert set(pool) == set(TRAIN_SENTENCES)  # the whole corpus, not only the 12 sampled passages
    for q in queries:
        assert len(q.candidates) == 3 and q.query in pool[q.candidates[0]]  # the positive first
    scores = teacher.scores(list(range(len(queries))), [c for q in queries for c in q.candidates])
    assert scores.shape == (len(queries), 3 * len(queries))
    own = [scores[i, 3 * i : 3 * i + 3] for i in range(len(queries))]
    # The teacher's labels, not the source's: a mined passage that matches the query as well as its
    # source does ("The cat paints old maps." for "old maps") scores as high, where a hard label says 0.
    assert all(row.min() > 0.5 for row in own)
    assert any(row[1:].max() >= row[0] for row in own)
    log = (tmp_path / "enc" / "training" / "log.csv").read_text()
    assert log.count("synthetic") == 3


def test_a_teachers_settings_are_checked_with_the_synthetic_stage():
    with pytest.raises(RagkitError, match="synthetic: teacher_bm25_weight must be in"):
        stage_configs(
            ["synthetic"],
            "cpu-smoke",
            data={"synthetic": "corpus"},
            settings={"synthetic": {"teacher": "bm25", "teacher_bm25_weight": 2.0}},
        )


def test_the_synthetic_stage_needs_a_corpus():
    with pytest.raises(RagkitError, match="give `corpus`") as error:
        stage_configs(["synthetic"], "cpu-smoke")
    from ragkit.cli.app import cli_flags
    from ragkit.errors import for_flags

    assert "give --corpus (a folder)" in for_flags(str(error.value), cli_flags())  # as the CLI shows it
