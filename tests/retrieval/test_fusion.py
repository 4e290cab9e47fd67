"""Fusing a dense and a lexical ranking: reciprocal rank fusion and the weighted sum of normalised scores."""

from __future__ import annotations

import pytest

from ragkit import RagkitError
from ragkit.retrieval.fusion import RRF_K, fuse, reciprocal_rank_fusion, weighted_fusion

DENSE = {"a": 0.9, "b": 0.8, "c": 0.1}
LEXICAL = {"c": 12.0, "b": 7.0, "d": 1.0}


def test_rrf_sums_reciprocal_ranks_so_documents_in_both_lists_win():
    fused = reciprocal_rank_fusion([DENSE, LEXICAL])
    assert list(fused) == ["c", "b", "a", "d"]  # a and d are in one list each
    assert fused["c"] == pytest.approx(1 / (RRF_K + 3) + 1 / (RRF_K + 1))  # 3rd and 1st
    assert fused["b"] == pytest.approx(2 / (RRF_K + 2))  # 2nd twice
    assert fused["a"] == pytest.approx(1 / (RRF_K + 1))


def test_weighted_sum_normalises_each_side_to_0_1():
    fused = weighted_fusion([DENSE, LEXICAL], [0.5, 0.5])
    assert fused["a"] == pytest.approx(0.5)  # dense best (1.0), absent from the lexical list
    assert fused["c"] == pytest.approx(0.5)  # dense worst (0.0), lexical best (1.0)
    assert fused["b"] == pytest.approx(0.5 * (0.7 / 0.8) + 0.5 * (6.0 / 11.0))


@pytest.mark.parametrize("method", ["rrf", "weighted"])
def test_the_weight_is_the_dense_share(method):
    assert list(fuse(DENSE, LEXICAL, method, weight=1.0))[:2] == ["a", "b"]
    assert list(fuse(DENSE, LEXICAL, method, weight=0.0))[:2] == ["c", "b"]


def test_an_empty_side_leaves_the_other_ranking():
    assert list(fuse(DENSE, {}, "weighted")) == list(DENSE)
    assert list(fuse({}, LEXICAL, "rrf")) == list(LEXICAL)


@pytest.mark.parametrize(
    "kwargs, message",
    [({"weight": 1.5}, "`weight` must be between 0 and 1"), ({"method": "max"}, "unknown fusion `method`")],
)
def test_bad_settings_are_one_line_errors_naming_the_parameter(kwargs, message):
    with pytest.raises(RagkitError, match=message):
        fuse(DENSE, LEXICAL, **kwargs)


def test_the_default_settings_are_the_ones_the_benchmark_measured():
    """ragkit's search defaults are what benchmarks/fusion.py chose, not numbers typed in by hand: each
    index calibrates itself, and the fallback (an index too small to calibrate) and hybrid's own
    setting are the dev splits' best."""
    import json
    from pathlib import Path

    from ragkit.index.search_setting import FALLBACK, HYBRID_DEFAULT

    results = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "fusion.json"
    measured = json.loads(results.read_text())
    assert measured["default"] == "calibrated"
    assert FALLBACK.label == measured["fallback"]
    assert HYBRID_DEFAULT.label == measured["chosen"]
