"""Peak memory of building a 1M x 768 index: the docstore is written a block at a time and FAISS is
filled from it a block at a time, so the peak is the index itself plus the BM25 part, not 2-3 copies
of every vector.

    python benchmarks/build_memory.py                    # 1,000,000 chunks of 768 dims
    python benchmarks/build_memory.py --chunks 20000 --out /tmp/x.md    # smoke

Vectors are random unit vectors of 768 dims (a flat FAISS index costs the same for any); texts are
short real passages (30 words of Wikipedia, reused). The encoder is a random 1-layer model with 768
hidden dims (only its dimension and fingerprint matter: nothing is embedded). The index is written
by ragkit's own transaction (`Index._commit`: docstore, FAISS, BM25, manifest). Peak resident memory
is the process's VmHWM, read after each phase.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import numpy as np
import transformers

from ragkit import Encoder, EncoderConfig
from ragkit.index import Index
from ragkit.index.chunking import Chunk
from ragkit.io import read_json_lines

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results"
FILE_CHUNKS = 10_000  # chunks per "file" written in one docstore transaction


def peak_gib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 2**20
    return float("nan")


def passages(n: int, words_per: int = 30) -> list[str]:
    words: list[str] = []
    for _, row in read_json_lines(DATA / "text" / "enwiki_sample_gensim.paragraphs.jsonl"):
        for paragraph in row.get("paragraphs", []):
            words += paragraph.split()
        if len(words) > 200_000:
            break
    cut = [" ".join(words[i : i + words_per]) for i in range(0, len(words) - words_per, words_per)]
    return [cut[i % len(cut)] for i in range(n)]


def encoder_768() -> Encoder:
    from ragkit.encoders.loading import load_tokenizer, resolve

    config = transformers.LlamaConfig(
        hidden_size=768, intermediate_size=64, num_hidden_layers=1, num_attention_heads=12, vocab_size=49152
    )
    model = transformers.AutoModel.from_config(config)
    return Encoder(model, load_tokenizer(resolve("smollm2-135m")), EncoderConfig(source="random-768"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=1_000_000)
    parser.add_argument("--index", type=Path, default=Path("runs/memory-index"))
    parser.add_argument("--out", type=Path, default=RESULTS / "build_memory.md")
    args = parser.parse_args()
    shutil.rmtree(args.index, ignore_errors=True)
    encoder = encoder_768()
    texts = passages(FILE_CHUNKS)
    baseline = peak_gib()
    phases: dict[str, float] = {}
    rng = np.random.default_rng(0)

    def write(store, report, previous) -> dict[str, str]:
        for first in range(0, args.chunks, FILE_CHUNKS):
            n = min(FILE_CHUNKS, args.chunks - first)
            chunks = [Chunk(f"d{first + i}", "", texts[i], 0, len(texts[i]), {}, 40) for i in range(n)]
            vectors = rng.standard_normal((n, 768)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            store.replace_file(f"part{first:08}", str(first), n, chunks, vectors)
        phases["docstore written"] = peak_gib()
        return {}

    start = time.perf_counter()
    report = Index.open(args.index, encoder)._commit(write, kind="synthetic", corpus="synthetic")
    seconds = time.perf_counter() - start
    phases["index built (FAISS + BM25 + manifest)"] = peak_gib()
    raw = args.chunks * 768 * 4 / 2**30
    lines = [
        "# Peak memory of a build",
        "",
        f"`python benchmarks/build_memory.py --chunks {args.chunks}`: {report.counts['chunks']:,} "
        f"chunks x 768 dims ({report.factory}), texts of 30 words; {seconds:,.0f} s in all. The "
        f"vectors alone are {raw:.2f} GiB; the FAISS index holds one copy of them.",
        "",
        "| after | peak resident memory GiB |",
        "|---|---|",
        f"| loading the encoder and texts | {baseline:.2f} |",
        *(f"| {name} | {value:.2f} |" for name, value in phases.items()),
        "",
        "What the build added to the peak, over the vectors' own size: "
        f"{(phases['index built (FAISS + BM25 + manifest)'] - baseline) / raw:.2f}x.",
    ]
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
