"""FAISS indexes from factory strings, inner product on L2-normalised vectors, on CPU or GPU.

Specs are faiss `index_factory` strings ("Flat", "IVF1024,Flat", "HNSW32", "IVF1024,PQ32", "SQ8")
or presets ("flat", "ivf", "hnsw", "ivfpq", "sq8", "sqfp16") that pick their sizes from the corpus.
"IVF" without a number gets nlist = 4 * sqrt(N), capped so that every list has 39 training points.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import faiss
import numpy as np

from ragkit.errors import RagkitError
from ragkit.index.faiss_build import faiss_build
from ragkit.index.ondisk import TRAINING_BYTES
from ragkit.io.records import from_known_fields

FLAT_UP_TO = 100_000  # exact search is fast enough below this many vectors
PRESETS = {
    "flat": "Flat",
    "ivf": "IVF,Flat",
    "hnsw": "HNSW32",
    "ivfpq": "IVF,PQ{m}x{nbits}",
    "sq8": "SQ8",
    "sqfp16": "SQfp16",
}


@dataclass(frozen=True)
class IndexLayout:
    """How the vectors are stored: the `spec` asked for, the faiss factory string it resolved to,
    and what that string implies, parsed here once (the retrain policy and the loader ask)."""

    factory: str = ""
    spec: str | None = None
    metric: str = "inner_product"
    on_disk: bool = False

    @property
    def trainable(self) -> bool:
        """Whether the index learns from the vectors (IVF centroids, PQ / SQ codebooks): a corpus that
        grows or shrinks a lot needs it trained again."""
        return bool(re.search(r"IVF|PQ|SQ", self.factory))

    @property
    def hnsw(self) -> bool:
        """Whether the index is an HNSW graph (searched with efSearch; no GPU version in faiss)."""
        return "HNSW" in self.factory

    @property
    def removable(self) -> bool:
        """Whether vectors can be removed in place (an HNSW graph cannot)."""
        return not self.hnsw

    @property
    def ivf_lists(self) -> int | None:
        """The number of IVF lists, for an IVF index."""
        found = re.search(r"\bIVF(\d+)", self.factory)
        return int(found.group(1)) if found else None

    @classmethod
    def from_json(cls, data: dict) -> IndexLayout:
        """The record of a manifest's "index" object (unknown keys ignored)."""
        return from_known_fields(cls, data)


def nlist_for(n: int) -> int:
    """IVF lists for `n` vectors: ~4 sqrt(n), with at least 39 training vectors per list (faiss warns
    below)."""
    return max(1, min(int(4 * math.sqrt(n)), n // 39))


def pq_subquantizers(d: int) -> int:
    """The largest divisor of d up to d/4 and 64: 4+ dims per 8-bit code, at most 64 codes per vector."""
    return max(m for m in range(1, min(64, max(1, d // 4)) + 1) if d % m == 0)


def pq_bits(n: int) -> int:
    """Bits per PQ code: 8, or fewer when there are too few vectors to train 2^bits centroids (39 each)."""
    return max(1, min(8, int(math.log2(max(n, 2) / 39))))


def resolve_spec(spec: str | None, n: int, d: int) -> str:
    """A concrete faiss factory string for `n` vectors of `d` dims."""
    if spec is None:
        spec = "flat" if n <= FLAT_UP_TO else "ivf"
    factory = PRESETS.get(spec.lower(), spec).format(m=pq_subquantizers(d), nbits=pq_bits(n))
    factory = re.sub(r"\bIVF(?=,)", f"IVF{nlist_for(n)}", factory)
    try:
        faiss.index_factory(d, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as e:
        raise RagkitError(
            f"invalid index spec {spec!r} ({factory}): use a preset ({', '.join(PRESETS)}) "
            "or a faiss index_factory string such as IVF256,Flat"
        ) from e
    nlist = IndexLayout(factory).ivf_lists
    if nlist and n < 39 * nlist:
        raise RagkitError(
            f"{factory} needs at least {39 * nlist} vectors to train, the corpus has {n}; "
            "use `spec` flat or fewer IVF lists"
        )
    return factory


def default_search_params(factory: str) -> dict[str, int]:
    """nprobe for IVF (1/16 of the lists, at least 16) and efSearch for HNSW."""
    params, layout = {}, IndexLayout(factory)
    if nlist := layout.ivf_lists:
        params["nprobe"] = min(nlist, max(16, nlist // 16))
    if layout.hnsw:
        params["efSearch"] = 64
    return params


def build_index(vectors: np.ndarray, factory: str, *, seed: int = 0) -> faiss.Index:
    """Train (on up to 256 points per IVF list) and fill an index; on every GPU when faiss-gpu sees one.

    The returned index is always on the CPU, ready to save.
    """
    n, d = vectors.shape
    index = faiss.index_factory(d, factory, faiss.METRIC_INNER_PRODUCT)
    layout = IndexLayout(factory)
    on_gpu = faiss_build().uses_gpu and not layout.hnsw  # no GPU HNSW in faiss
    work = _to_gpus(index) if on_gpu else index
    if not work.is_trained:
        cap = 256 * layout.ivf_lists if layout.ivf_lists else 100_000
        sample = vectors
        if n > cap:
            sample = vectors[np.sort(np.random.default_rng(seed).choice(n, cap, replace=False))]
        work.train(np.ascontiguousarray(sample))
    for start in range(0, n, 65_536):
        work.add(np.ascontiguousarray(vectors[start : start + 65_536]))
    return faiss.index_gpu_to_cpu(work) if on_gpu else index


def with_ids(factory: str, d: int) -> faiss.Index:
    """An empty index whose vectors carry ids (chunk ids): IVF indexes store ids themselves, the
    others are wrapped in `IndexIDMap2`. Vectors can then be added and removed in place."""
    ivf = IndexLayout(factory).ivf_lists is not None
    return faiss.index_factory(d, factory if ivf else f"IDMap2,{factory}", faiss.METRIC_INNER_PRODUCT)


def trained(index: faiss.Index, sample: np.ndarray) -> faiss.Index:
    """`index` trained (IVF centroids, PQ / SQ codebooks) on `sample`; an IVF index trains on the
    GPUs when faiss-gpu sees any. The result is on the CPU."""
    if index.is_trained:
        return index
    sample = np.ascontiguousarray(sample, dtype=np.float32)
    if faiss_build().uses_gpu and isinstance(faiss.downcast_index(index), faiss.IndexIVF):
        work = _to_gpus(index)
        work.train(sample)
        return faiss.index_gpu_to_cpu(work)
    index.train(sample)
    return index


def training_sample_size(factory: str, *, d: int = 0, on_disk: bool = False) -> int:
    """Vectors to train on: 256 per IVF list (faiss's own cap), else 100,000. An index with its lists
    on disk trains on at most `ondisk.TRAINING_BYTES` of `d`-dim vectors (and 39 per list, faiss's
    floor), so that its memory does not grow with the corpus."""
    nlist = IndexLayout(factory).ivf_lists
    if not nlist:
        return 100_000
    if on_disk:
        return min(256 * nlist, max(39 * nlist, TRAINING_BYTES // (4 * max(d, 1))))
    return 256 * nlist


def _to_gpus(index: faiss.Index) -> faiss.Index:
    options = faiss.GpuMultipleClonerOptions()
    options.shard = True  # split the vectors across GPUs rather than copying them to each
    options.useFloat16 = True
    return faiss.index_cpu_to_all_gpus(index, co=options)


def prepare_for_search(index: faiss.Index, params: dict[str, int], *, gpu: bool = True) -> faiss.Index:
    """Apply search parameters, and move the index to the GPUs when faiss-gpu sees any (and `gpu`)."""
    if gpu and faiss_build().uses_gpu and not isinstance(faiss.downcast_index(index), faiss.IndexHNSW):
        index = _to_gpus(index)
        space = faiss.GpuParameterSpace()
    else:
        space = faiss.ParameterSpace()
    for name, value in params.items():
        space.set_index_parameter(index, name, value)
    return index


def selector_params(index: faiss.Index, ids: np.ndarray) -> faiss.SearchParameters:
    """Search parameters that restrict a CPU `index` to `ids`, keeping its nprobe / efSearch."""
    selector = faiss.IDSelectorBatch(np.ascontiguousarray(ids, dtype=np.int64))
    inner = faiss.downcast_index(index)
    if isinstance(inner, faiss.IndexIDMap2):  # it translates the selector to its inner index's ids
        inner = faiss.downcast_index(inner.index)
    if isinstance(inner, faiss.IndexIVF):
        return faiss.SearchParametersIVF(sel=selector, nprobe=inner.nprobe)
    if isinstance(inner, faiss.IndexHNSW):
        return faiss.SearchParametersHNSW(sel=selector, efSearch=inner.hnsw.efSearch)
    return faiss.SearchParameters(sel=selector)
