"""Approximate indexes against exact search, on real (LSA) vectors of the Cranfield collection."""

from __future__ import annotations

import numpy as np
import pytest

from ragkit import RagkitError
from ragkit.index.faiss_index import (
    build_index,
    default_search_params,
    nlist_for,
    pq_bits,
    pq_subquantizers,
    prepare_for_search,
    resolve_spec,
)


def top10(index, queries: np.ndarray) -> np.ndarray:
    return index.search(queries, 10)[1]


def recall_at_10(found: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, exact, strict=True)]))


# Measured on these vectors: ivf 0.995, hnsw 1.0, ivfpq (5-bit codes: 1,398 points) 0.78, sq8 0.996.
@pytest.mark.parametrize(("spec", "floor"), [("ivf", 0.95), ("hnsw", 0.97), ("ivfpq", 0.65), ("sq8", 0.97)])
def test_recall_at_10_against_flat(lsa_vectors, spec, floor):
    docs, queries = lsa_vectors
    exact = top10(build_index(docs, "Flat"), queries)
    factory = resolve_spec(spec, len(docs), docs.shape[1])
    index = prepare_for_search(build_index(docs, factory), default_search_params(factory))
    assert index.ntotal == len(docs)
    assert floor <= recall_at_10(top10(index, queries), exact) <= 1.0


def test_flat_is_exact_inner_product(lsa_vectors):
    docs, queries = lsa_vectors
    scores, ids = build_index(docs, "Flat").search(queries[:5], 3)
    expected = np.argsort(-(queries[:5] @ docs.T), axis=1)[:, :3]
    np.testing.assert_array_equal(ids, expected)
    np.testing.assert_allclose(scores, np.take_along_axis(queries[:5] @ docs.T, expected, 1), rtol=1e-5)


def test_default_spec_follows_corpus_size():
    assert resolve_spec(None, 100_000, 64) == "Flat"
    assert nlist_for(1_000_000) == 4000
    assert resolve_spec(None, 1_000_000, 64) == "IVF4000,Flat"
    assert resolve_spec("ivfpq", 1_000_000, 768) == "IVF4000,PQ64x8"
    assert resolve_spec("ivfpq", 1_400, 128) == "IVF35,PQ32x5"  # 2^5 * 39 <= 1,400 < 2^6 * 39


def test_ivf_has_enough_training_points_per_list():
    for n in (1_000, 50_000, 2_000_000):
        assert 39 * nlist_for(n) <= n
    with pytest.raises(RagkitError, match="needs at least 3900 vectors"):
        resolve_spec("IVF100,Flat", 500, 64)


def test_pq_sizes_divide_the_dimension():
    for d in (64, 100, 576, 4096, 7):
        m = pq_subquantizers(d)
        assert d % m == 0 and m <= 64
    assert pq_bits(100_000) == 8 and pq_bits(100) == 1


def test_search_params_by_index_type():
    assert default_search_params("Flat") == {}
    assert default_search_params("IVF4000,Flat") == {"nprobe": 250}
    assert default_search_params("IVF35,Flat") == {"nprobe": 16}
    assert default_search_params("HNSW32") == {"efSearch": 64}


def test_bad_spec_names_the_presets():
    with pytest.raises(RagkitError, match=r"invalid index spec 'bogus'.*flat, ivf, hnsw"):
        resolve_spec("bogus", 1000, 64)
