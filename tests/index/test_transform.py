"""PCA and truncation: fewer bytes per vector, measured top-10 overlap, the same transform for queries."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from ragkit import RagkitError
from ragkit.index.faiss_index import build_index
from ragkit.index.transform import Transform


def overlap_at_10(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean([len(set(x) & set(y)) / 10 for x, y in zip(a, b, strict=True)]))


def index_bytes(index) -> int:
    return faiss.serialize_index(index).size


def test_pca_cuts_bytes_per_vector_and_keeps_top10_overlap(lsa_vectors):
    docs, queries = lsa_vectors
    full = build_index(docs, "Flat")
    exact = full.search(queries, 10)[1]
    overlaps = []
    for dim in (64, 32, 16):
        pca = Transform.fit(docs, pca=dim)
        reduced = build_index(pca.apply(docs), "Flat")
        assert index_bytes(full) / index_bytes(reduced) == pytest.approx(128 / dim, rel=0.01)
        overlaps.append(overlap_at_10(reduced.search(pca.apply(queries), 10)[1], exact))
    # Measured: 0.78, 0.60, 0.43. LSA vectors are already compressed; LLM vectors lose less.
    assert overlaps[0] >= 0.7 and overlaps[0] > overlaps[1] > overlaps[2] > 0.3


def test_pca_beats_truncation_at_the_same_size(lsa_vectors):
    docs, queries = lsa_vectors
    exact = build_index(docs, "Flat").search(queries, 10)[1]
    found = {}
    for kind in ("pca", "dim"):
        t = Transform.fit(docs, **{kind: 32})
        found[kind] = overlap_at_10(build_index(t.apply(docs), "Flat").search(t.apply(queries), 10)[1], exact)
    assert found["pca"] > found["dim"]


@pytest.mark.parametrize("options", [{"pca": 16}, {"pca": 16, "whiten": True}, {"dim": 16}, {}])
def test_outputs_are_normalised_and_survive_save_and_load(tmp_path, lsa_vectors, options):
    docs, _ = lsa_vectors
    transform = Transform.fit(docs, **options)
    out = transform.apply(docs)
    assert out.shape == (len(docs), 16 if options else 128)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    transform.save(tmp_path)
    loaded = Transform.load(tmp_path, transform.describe())
    np.testing.assert_array_equal(loaded.apply(docs), out)


def test_whitening_changes_the_vectors(lsa_vectors):
    docs, _ = lsa_vectors
    plain, white = (
        Transform.fit(docs, pca=16).apply(docs),
        Transform.fit(docs, pca=16, whiten=True).apply(docs),
    )
    assert np.abs(plain - white).max() > 0.1


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"pca": 8, "dim": 8}, "not both"),
        ({"pca": 500}, "between 1 and"),
        ({"dim": 0}, "between 1 and"),
        ({"dim": 8, "whiten": True}, "`pca` only"),
    ],
)
def test_bad_options_are_refused(options, message):
    with pytest.raises(RagkitError, match=message):
        Transform.fit(np.random.default_rng(0).standard_normal((100, 64)).astype(np.float32), **options)


def test_pca_needs_enough_training_vectors():
    with pytest.raises(RagkitError, match="needs at least 32 chunks"):
        Transform.fit(np.ones((10, 64), dtype=np.float32), pca=32)
