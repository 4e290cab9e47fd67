"""Hybrid search: two rankings of the same documents (dense and BM25, say) into one.

Two standard ways, both on each system's own top-k (a document missing from one list gets
nothing from it):

- reciprocal rank fusion (Cormack et al., 2009): sum over systems of weight / (k + rank), k = 60;
  ranks only, so incomparable score scales do not matter.
- weighted sum of min-max normalised scores: `weight` * dense + (1 - `weight`) * lexical, each
  scaled to [0, 1] over its own top-k.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Literal, TypeVar, get_args

from ragkit.errors import RagkitError

FusionMethod = Literal["rrf", "weighted"]
FUSION_METHODS: tuple[FusionMethod, ...] = get_args(FusionMethod)
RRF_K = 60
SearchMode = Literal["dense", "bm25", "hybrid"]
SEARCH_MODES: tuple[SearchMode, ...] = get_args(SearchMode)

# By default each index searches with the setting it calibrated itself to (ragkit/index/calibration.py).
# Chosen on two dev splits that no reported folder belongs to (SQuAD, PubMedQA;
# benchmarks/results/fusion.md): `FALLBACK`, the best of every setting, dense and BM25 included, for an
# index with no calibration (too few sentences to draw pseudo-queries from); and hybrid's own setting,
# the best fused one, for `mode="hybrid"` without a method or weight.
DEFAULT_METHOD: FusionMethod = "weighted"
DEFAULT_WEIGHT = 0.6
HYBRID_CANDIDATES = 1000  # each side's top n before fusion, as measured (mteb retrieves 1000)

DocId = TypeVar("DocId", bound=Hashable)  # a document's id or its row in the index
Ranking = Mapping[DocId, float]  # document id -> score, any order


def reciprocal_rank_fusion(
    rankings: Sequence[Ranking[DocId]], weights: Sequence[float] | None = None, k: int = RRF_K
) -> dict[DocId, float]:
    """Fused scores, best first: sum of weight / (k + rank) with ranks counted from 1."""
    weights = _check_weights(rankings, weights)
    fused: dict[DocId, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, doc in enumerate(sorted(ranking, key=ranking.__getitem__, reverse=True), start=1):
            fused[doc] = fused.get(doc, 0.0) + weight / (k + rank)
    return dict(sorted(fused.items(), key=lambda item: item[1], reverse=True))


def weighted_fusion(
    rankings: Sequence[Ranking[DocId]], weights: Sequence[float] | None = None
) -> dict[DocId, float]:
    """Fused scores, best first: the weighted sum of each ranking's min-max normalised scores."""
    weights = _check_weights(rankings, weights)
    fused: dict[DocId, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        if not ranking:
            continue
        low, high = min(ranking.values()), max(ranking.values())
        span = high - low
        for doc, score in ranking.items():
            fused[doc] = fused.get(doc, 0.0) + weight * ((score - low) / span if span > 0 else 1.0)
    return dict(sorted(fused.items(), key=lambda item: item[1], reverse=True))


def check_fusion(method: str, weight: float) -> None:
    """A known `method` and a dense share `weight` in [0, 1], or a one-line error naming the parameter."""
    if method not in FUSION_METHODS:
        raise RagkitError(f"unknown fusion `method` {method!r}: use one of {', '.join(FUSION_METHODS)}")
    if not 0.0 <= weight <= 1.0:
        raise RagkitError(f"`weight` must be between 0 and 1 (the dense share), got {weight}")


def fuse(
    dense: Ranking[DocId], lexical: Ranking[DocId], method: FusionMethod = "rrf", weight: float = 0.5
) -> dict[DocId, float]:
    """Dense and lexical rankings of one query into one; `weight` is the dense side's share."""
    check_fusion(method, weight)
    return fuse_checked(dense, lexical, method, weight)


def fuse_checked(
    dense: Ranking[DocId], lexical: Ranking[DocId], method: str, weight: float
) -> dict[DocId, float]:
    """`fuse` for a `method` and `weight` checked before (a `SearchSetting`'s, checked when it was made)."""
    combine = reciprocal_rank_fusion if method == "rrf" else weighted_fusion
    return combine([dense, lexical], [weight, 1.0 - weight])


def _check_weights(rankings: Sequence[Ranking[DocId]], weights: Sequence[float] | None) -> list[float]:
    weights = [1.0] * len(rankings) if weights is None else list(weights)
    if len(weights) != len(rankings):
        raise RagkitError(f"{len(weights)} weights for {len(rankings)} rankings: give one per ranking")
    return weights
