"""Hybrid search over an index: its BM25 part, dense + BM25 fusion equal to an independent computation
on real corpora, upgrades of indexes built without BM25, and updates that keep BM25 in step."""

from __future__ import annotations

import gzip
import itertools
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from helpers import shared_folder, tiny_encoder

from ragkit import RagkitError
from ragkit.corpus import document_text
from ragkit.index import ChunkingConfig, Index, Retriever

QUERIES = 6


@pytest.fixture(scope="module", params=["cranfield", "scifact"])
def real(request, tmp_path_factory):
    """An index of the first 300 documents of a shared BEIR folder, and some of its queries."""
    folder = shared_folder(request.param)
    root = tmp_path_factory.mktemp(request.param)
    with gzip.open(folder / "corpus.jsonl.gz", "rt") as f:
        rows = [json.loads(line) for line in itertools.islice(f, 300)]
    for i, row in enumerate(rows):
        row["group"] = "a" if i % 7 == 0 else "b"  # a metadata field for a selective filter
    (root / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with (folder / "queries.jsonl").open() as f:
        queries = [json.loads(line)["text"] for line in itertools.islice(f, QUERIES)]
    encoder = tiny_encoder()
    Index.build(
        root / "corpus.jsonl", encoder, root / "idx", chunking=ChunkingConfig(512, 0), show_progress=False
    )
    return Retriever.load(root / "idx", encoder=encoder), queries, rows


def _minmax(run: dict[int, float]) -> dict[int, float]:
    low, high = min(run.values()), max(run.values())
    return {p: (s - low) / (high - low) if high > low else 1.0 for p, s in run.items()}


def test_dense_mode_is_exact_cosine_search_over_the_chunks(real):
    retriever, queries, _ = real
    ids, texts = retriever.store.texts()
    documents = retriever.encoder.encode_documents(texts)
    for query, ranked in zip(queries, retriever.ranked(queries, 20, mode="dense"), strict=True):
        scores = documents @ retriever.embed_queries([query])[0]
        assert list(ranked)[:5] == list(ids[np.argsort(-scores, kind="stable")[:5]])


def test_bm25_mode_ranks_the_chunk_texts_as_bm25s_does(real):
    import bm25s
    import Stemmer

    retriever, queries, _ = real
    stemmer = Stemmer.Stemmer("english")  # an independent bm25s index of the same texts
    _, texts = retriever.store.texts()
    bm25 = bm25s.BM25(k1=1.5, b=0.75, method="lucene")
    bm25.index(
        bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False), show_progress=False
    )
    for query, ranked in zip(queries, retriever.ranked(queries, 10, mode="bm25"), strict=True):
        words = bm25s.tokenize(
            [query], stopwords="en", stemmer=stemmer, return_ids=False, show_progress=False
        )[0]
        scores = bm25.get_scores([w for w in words if w in bm25.vocab_dict])
        assert [round(s, 4) for s in ranked.values()] == [
            round(s, 4) for s in sorted(scores, reverse=True)[:10]
        ]


@pytest.mark.parametrize("weight", [0.2, 0.5])
def test_hybrid_equals_an_independent_fusion_of_the_two_runs(real, weight):
    retriever, queries, _ = real
    n = 1000  # hybrid fuses each side's top 1000 (here: every chunk); the same runs, fused by hand
    dense = retriever.ranked(queries, n, mode="dense")
    lexical = retriever.ranked(queries, n, mode="bm25")
    weighted = retriever.ranked(queries, n, mode="hybrid", method="weighted", weight=weight)
    rrf = retriever.ranked(queries, n, mode="hybrid", method="rrf", weight=weight)
    for d, b, w, r in zip(dense, lexical, weighted, rrf, strict=True):
        d_norm, b_norm = _minmax(d), _minmax(b) if b else {}
        expected_w = {p: weight * d_norm.get(p, 0.0) + (1 - weight) * b_norm.get(p, 0.0) for p in {*d, *b}}
        assert set(w) == set(expected_w)
        assert all(abs(w[p] - expected_w[p]) < 1e-9 for p in w)
        assert list(w.values()) == sorted(w.values(), reverse=True)
        d_rank = {p: i + 1 for i, p in enumerate(d)}
        b_rank = {p: i + 1 for i, p in enumerate(b)}
        expected_r = {
            p: (weight / (60 + d_rank[p]) if p in d_rank else 0.0)
            + ((1 - weight) / (60 + b_rank[p]) if p in b_rank else 0.0)
            for p in {*d, *b}
        }
        assert all(abs(r[p] - expected_r[p]) < 1e-12 for p in r) and set(r) == set(expected_r)


def test_hybrid_search_returns_hits_in_the_fused_order_with_filters_and_threads(real):
    retriever, queries, rows = real
    hits = retriever.search(queries[0], k=5, mode="hybrid")
    (ranked,) = retriever.ranked([queries[0]], 1000, mode="hybrid")
    assert [h.score for h in hits] == list(ranked.values())[:5]
    # A selective metadata filter: the search runs over the matching chunks only, as if the index
    # held nothing else: both runs restricted to them, then fused.
    group = {r["_id"]: r["group"] for r in rows}
    filtered = retriever.search(queries[0], k=5, mode="hybrid", filter={"group": "a"})
    doc_of = retriever.store.doc_ids()
    (dense,) = retriever.ranked([queries[0]], 1000, mode="dense")
    (lexical,) = retriever.ranked([queries[0]], 1000, mode="bm25")
    d = _minmax({p: v for p, v in dense.items() if group[doc_of[p]] == "a"})
    b = _minmax({p: v for p, v in lexical.items() if group[doc_of[p]] == "a"})
    setting = retriever.resolve("hybrid")  # the index's calibrated fusion, or hybrid's default
    w = setting.weight
    if setting.method == "weighted":
        fused = {p: w * d.get(p, 0.0) + (1 - w) * b.get(p, 0.0) for p in {*d, *b}}
    else:
        d_rank, b_rank = ({p: i for i, p in enumerate(run, 1)} for run in (d, b))
        fused = {
            p: w / (60 + d_rank.get(p, 0)) * (p in d) + (1 - w) / (60 + b_rank.get(p, 0)) * (p in b)
            for p in {*d, *b}
        }
    expected = sorted(fused, key=lambda p: -fused[p])[:5]
    assert [h.doc_id for h in filtered] == [doc_of[p] for p in expected]
    assert [h.score for h in filtered] == pytest.approx([fused[p] for p in expected], abs=1e-9)
    assert all(group[h.doc_id] == "a" for h in filtered) and len(filtered) == 5
    with ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(lambda q: [h.chunk_id for h in retriever.search(q, k=3, mode="hybrid")], queries * 4)
        )
    assert answers == [[h.chunk_id for h in retriever.search(q, k=3, mode="hybrid")] for q in queries] * 4


@pytest.fixture
def small(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "cats.md").write_text("# Cats\nThe cat sat on the mat.")
    (corpus / "dogs.txt").write_text("A dog runs in the park with a red ball.")
    encoder = tiny_encoder()
    Index.build(corpus, encoder, tmp_path / "idx", show_progress=False)
    return corpus, encoder, tmp_path / "idx"


def test_an_update_keeps_the_bm25_part_in_step_with_the_files(small):
    corpus, encoder, index_dir = small
    (corpus / "zebra.txt").write_text("Zebras graze on the savanna.")
    Index.build(corpus, encoder, index_dir, show_progress=False)
    retriever = Retriever.load(index_dir, encoder=encoder)
    assert retriever.search("zebras", k=1, mode="bm25")[0].path == "zebra.txt"
    _, texts = retriever.store.texts()
    assert texts == [document_text("Cats", "# Cats\nThe cat sat on the mat."), *texts[1:]] and len(texts) == 3
    (corpus / "zebra.txt").unlink()
    Index.build(corpus, encoder, index_dir, show_progress=False)
    retriever = Retriever.load(index_dir, encoder=encoder)
    assert retriever.search("zebras", k=1, mode="bm25") == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "sparse"}, "unknown search `mode` 'sparse'"),
        ({"mode": "hybrid", "method": "max"}, "unknown fusion `method` 'max'"),
        ({"mode": "hybrid", "weight": 1.5}, "`weight` must be between 0 and 1"),
    ],
)
def test_bad_modes_and_fusion_settings_are_one_line_errors(small, kwargs, message):
    _, encoder, index_dir = small
    with pytest.raises(RagkitError, match=message):
        Retriever.load(index_dir, encoder=encoder).search("cat", **kwargs)


def test_bm25s_is_imported_without_jax_so_jax_never_takes_the_gpu(tmp_path):
    """bm25s' import probes JAX with a top-k; on a GPU that starts JAX's CUDA backend, which takes 75%
    of the GPU (on an H200 every other test worker then ran out of memory). A stand-in JAX on the path
    records whether anything touched it: building and loading a BM25 index must not, and JAX must stay
    importable afterwards."""
    fake = tmp_path / "site" / "jax"
    fake.mkdir(parents=True)
    marker = tmp_path / "jax-was-imported"
    (fake / "__init__.py").write_text(f"open({str(marker)!r}, 'a').write('import\\n')\n")
    (fake / "lax.py").write_text("def top_k(x, k):\n    raise RuntimeError('JAX backend started')\n")
    script = (
        "import sys; from ragkit.retrieval.lexical import LexicalIndex; "
        "LexicalIndex.build(['the cat sat', 'a dog ran']).save(sys.argv[1]); "
        "index = LexicalIndex.load(sys.argv[1]); assert list(index.search(['cat'], 1)[0]) == [0]; "
        "assert 'jax' not in sys.modules; import jax; print('jax importable')"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(fake.parent), *sys.path])}
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "bm25")], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "jax importable" in result.stdout
    assert marker.read_text() == "import\n"  # only the script's own `import jax`, never bm25s'
