"""Query latency (p50 / p99) per search mode and queries/s per thread count, on a large index.

    python benchmarks/retrieval_speed.py                        # 100k chunks, the built-in encoder
    python benchmarks/retrieval_speed.py --chunks 2000 --real 200 --queries 20 --out /tmp/x.md   # smoke

The index holds `--chunks` chunks of real English text (Wikipedia paragraphs from ../shared/data/text,
cut into ~100-word pieces and reused as needed: BM25 sees a realistic vocabulary). Embedding 100k
chunks on a CPU takes hours, so `--real` of them get the encoder's own vectors and the rest are
mixtures of those vectors plus noise, normalised (dense search costs the same for any vectors of the
right size). The index is written through ragkit's own build path (docstore, faiss, BM25 part,
manifest). Queries are real questions (the SQuAD dev folder, else cranfield's). Latency includes
encoding the query, as a RAG app sees it. Time it on an idle machine.
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ragkit import Encoder
from ragkit.index import Index, Retriever
from ragkit.index.docstore import Docstore
from ragkit.index.faiss_build import faiss_build
from ragkit.io import read_json_lines
from ragkit.retrieval.chunking import Chunk

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results"
MODES = ("dense", "bm25", "hybrid")


def pieces(n: int) -> list[str]:
    """n passages of about 100 words of real text, reusing the sample as often as needed."""
    words = []
    for _, row in read_json_lines(DATA / "text" / "enwiki_sample_gensim.paragraphs.jsonl"):
        for paragraph in row.get("paragraphs", []):
            words += paragraph.split()
        if len(words) > 100 * n:
            break
    cut = [" ".join(words[i : i + 100]) for i in range(0, len(words) - 100, 100)]
    return [f"{cut[i % len(cut)]} ({i})" for i in range(n)]  # distinct texts


def build(index_dir: Path, encoder: Encoder, n: int, real: int, seed: int = 0) -> None:
    texts = pieces(n)
    vectors = np.empty((n, encoder.dim), dtype=np.float32)
    vectors[:real] = encoder.encode_documents(texts[:real], show_progress=True)
    rng = np.random.default_rng(seed)
    mix = vectors[rng.integers(0, real, (n - real, 2))].sum(axis=1) + 0.05 * rng.standard_normal(
        (n - real, encoder.dim)
    ).astype(np.float32)
    vectors[real:] = mix / np.linalg.norm(mix, axis=1, keepdims=True)
    index = Index.open(index_dir, encoder)  # a new index, ragkit's default settings

    def write_chunks(store: Docstore, report, previous) -> dict[str, str]:
        for first in range(0, n, 1000):  # one "file" per thousand chunks
            rows = range(first, min(first + 1000, n))
            chunks = [Chunk(f"d{i}", "", texts[i], 0, len(texts[i]), {"group": i % 10}, 0) for i in rows]
            store.replace_file(f"part{first:07}", str(first), len(chunks), chunks, vectors[list(rows)])
        return {}  # nothing was there before

    index._commit(write_chunks, kind="synthetic", corpus="synthetic")  # ragkit's own transaction


def questions(n: int) -> list[str]:
    folder = Path("runs/squad-dev500") if Path("runs/squad-dev500").is_dir() else DATA / "cranfield"
    rows = [row["text"] for _, row in read_json_lines(folder / "queries.jsonl")]
    return rows[:n]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--real", type=int, default=2000, help="chunks embedded by the encoder itself")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--threads", type=int, nargs="*", default=[1, 4, 16])
    parser.add_argument("--model", default="llm2vec-smollm2-135m")
    parser.add_argument("--index", type=Path, default=Path("runs/speed-index"))
    parser.add_argument("--out", type=Path, default=RESULTS / "retrieval_speed.md")
    args = parser.parse_args()

    encoder = Encoder.load(args.model)
    if not args.index.exists():
        build(args.index, encoder, args.chunks, min(args.real, args.chunks))
    retriever = Retriever.load(args.index, encoder=encoder)
    queries = questions(args.queries)
    retriever.search(queries[0], k=10)  # warm-up
    lines = [
        "# Retrieval speed",
        "",
        f"`python benchmarks/retrieval_speed.py --chunks {args.chunks} --real {args.real}`: "
        f"{retriever.index.ntotal:,} chunks ({retriever.manifest.index.factory}), {len(queries)} real "
        f"questions, k 10, {args.model} encoding each query ({encoder.precision}) on "
        f"{faiss_build().describe()}.",
        "",
        "| mode | p50 ms | p99 ms | "
        + " | ".join(f"queries/s, {t} thread{'s' * (t > 1)}" for t in args.threads)
        + " |",
        "|---" * (3 + len(args.threads)) + "|",
    ]
    vectors = encoder.encode_queries(queries)  # for the rows that time the index alone
    rows = [(None, False)] + [(mode, False) for mode in MODES] + [("dense", True), ("hybrid", True)]
    for mode, given in rows:

        def search(i: int, mode=mode, given=given) -> None:
            retriever.search(queries[i], k=10, mode=mode, query_vectors=vectors[i : i + 1] if given else None)

        latencies = []
        for i in range(len(queries)):
            start = time.perf_counter()
            search(i)
            latencies.append(1000 * (time.perf_counter() - start))
        rates = []
        for threads in args.threads:
            start = time.perf_counter()
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(search, range(len(queries))))
            rates.append(len(queries) / (time.perf_counter() - start))
        p50, p99 = np.percentile(latencies, [50, 99])
        label = f"{mode}, query vector given" if given else mode
        if mode is None:
            label = f"default: the index's calibrated setting ({retriever.resolve().label})"
        lines.append(f"| {label} | {p50:.1f} | {p99:.1f} | " + " | ".join(f"{r:.1f}" for r in rates) + " |")
        print(lines[-1], flush=True)
    lines += [
        "",
        "Latency includes encoding the query, except in the rows where the query vector is given (what",
        "the index itself costs: faiss, BM25, fusion and the docstore).",
    ]
    args.out.write_text("\n".join(lines) + "\n")
    print(args.out.read_text())


if __name__ == "__main__":
    main()
