"""Index specs and PCA sizes side by side: build time, bytes per vector, queries/s, recall@10 vs exact search.

    python benchmarks/index_speed.py [--real-n 1000] [--synthetic-n 100000] [--synthetic-dim 4096]

Two workloads in one run:
- real: Cranfield abstracts from ../shared/data encoded by SmolLM2-135M (576 dims), queried with the
  collection's 225 real queries. Vectors are cached under $RAGKIT_HOME/bench so reruns skip encoding.
- synthetic: LLM-sized 4096-dim vectors (clustered, low intrinsic dimension, like real embeddings),
  the size where PCA pays: a flat index holds 16 KB per vector.
Recall@10 is measured against exact (Flat) search on the full-dimension vectors, so PCA rows include
what the reduction loses as well as what the index approximates.
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from pathlib import Path

import faiss
import numpy as np
from rich.console import Console
from rich.table import Table

from ragkit.index.faiss_build import faiss_build
from ragkit.index.faiss_index import build_index, default_search_params, prepare_for_search, resolve_spec
from ragkit.index.transform import Transform
from ragkit.paths import ragkit_home

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SPECS = ["flat", "ivf", "hnsw", "ivfpq", "sq8", "sqfp16"]
INSTRUCTION = "Given a question, retrieve a passage that answers it: "


def cranfield_vectors(n: int, max_length: int) -> tuple[np.ndarray, np.ndarray]:
    cache = ragkit_home() / "bench" / f"cranfield-smollm2-{n}-{max_length}.npz"
    if cache.is_file():
        saved = np.load(cache)
        return saved["docs"], saved["queries"]
    from ragkit import Encoder

    folder = DATA / "cranfield"
    if not folder.is_dir():
        raise SystemExit(f"{folder} not found: the real workload reads ../shared/data (or pass --skip-real)")
    with gzip.open(folder / "corpus.jsonl.gz", "rt") as f:
        docs = [json.loads(line) for line in f]
    texts = [f"{d['title']}\n{d['text']}" for d in docs if d["text"].strip()][:n]
    queries = [json.loads(line)["text"] for line in (folder / "queries.jsonl").read_text().splitlines()]
    encoder = Encoder.load("smollm2-135m", max_length=max_length)
    d = encoder.encode(texts, show_progress=True)
    q = encoder.encode(queries, instruction=INSTRUCTION)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, docs=d, queries=q)
    return d, q


def synthetic_vectors(n: int, d: int, n_queries: int = 1000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Points near a 64-dim subspace of R^d, in 1000 clusters, L2-normalised; queries drawn the same way."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.standard_normal((d, 64)).astype(np.float32))[0].T  # (64, d)
    centers = rng.standard_normal((1000, 64)).astype(np.float32) * 2

    def draw(m: int) -> np.ndarray:
        out = np.empty((m, d), dtype=np.float32)
        for start in range(0, m, 20_000):
            k = min(20_000, m - start)
            latent = centers[rng.integers(0, 1000, k)] + rng.standard_normal((k, 64)).astype(np.float32)
            out[start : start + k] = latent @ basis + 0.05 * rng.standard_normal((k, d)).astype(np.float32)
        faiss.normalize_L2(out)
        return out

    return draw(n), draw(n_queries)


def run(
    name: str, docs: np.ndarray, queries: np.ndarray, pcas: list[int | None], specs: list[str], console
) -> str:
    exact = build_index(docs, "Flat").search(queries, 10)[1]
    table = Table(title=f"{name}: {len(docs):,} vectors x {docs.shape[1]} dims, {len(queries)} queries")
    columns = ["spec", "pca", "build s", "bytes/vector", "queries/s", "recall@10"]
    for column in columns:
        table.add_column(column, justify="right")
    rows = []
    for pca in pcas:
        start = time.perf_counter()
        transform = Transform.fit(docs[:65_536], pca=pca)
        reduced, reduced_queries = transform.apply(docs), transform.apply(queries)
        transform_s = time.perf_counter() - start
        for spec in specs:
            factory = resolve_spec(spec, len(reduced), reduced.shape[1])
            start = time.perf_counter()
            index = build_index(reduced, factory)
            build_s = time.perf_counter() - start + transform_s
            size = faiss.serialize_index(index).size / len(reduced)
            index = prepare_for_search(index, default_search_params(factory))
            index.search(reduced_queries[:10], 10)  # warm up
            seconds = []
            for _ in range(5):  # a batch of queries takes milliseconds: keep the best of five
                start = time.perf_counter()
                found = index.search(reduced_queries, 10)[1]
                seconds.append(time.perf_counter() - start)
            qps = len(queries) / min(seconds)
            recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, exact, strict=True)])
            row = [factory, str(pca or "-"), f"{build_s:.2f}", f"{size:,.0f}", f"{qps:,.0f}", f"{recall:.3f}"]
            table.add_row(*row)
            rows.append(row)
    console.print(table)
    lines = [f"### {table.title}", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows]) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real-n", type=int, default=1000, help="Cranfield documents to encode")
    parser.add_argument(
        "--max-length", type=int, default=128, help="encoder max_length for the real workload"
    )
    parser.add_argument("--synthetic-n", type=int, default=100_000)
    parser.add_argument("--synthetic-dim", type=int, default=4096)
    parser.add_argument("--skip-real", action="store_true")
    parser.add_argument("--skip-synthetic", action="store_true")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "index_speed.md")
    args = parser.parse_args()

    console = Console()
    build = faiss_build()
    console.print(f"{build.describe()}; {faiss.omp_get_max_threads()} threads")
    report = [f"# Index benchmark\n\n`python benchmarks/index_speed.py` on {build.describe()}, "
              f"{faiss.omp_get_max_threads()} threads.\n"]  # fmt: skip
    if not args.skip_real:
        docs, queries = cranfield_vectors(args.real_n, args.max_length)
        report.append(run("Cranfield x SmolLM2-135M", docs, queries, [None, 256, 128, 64], SPECS, console))
    if not args.skip_synthetic:
        docs, queries = synthetic_vectors(args.synthetic_n, args.synthetic_dim)
        specs = ["flat", "ivf", "ivfpq", "sq8"]
        report.append(run("synthetic", docs, queries, [None], specs, console))
        report.append(
            run("synthetic, PCA", docs, queries, [256, 64], ["flat", "ivf", "hnsw", "ivfpq", "sq8"], console)
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(report))
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
