"""Peak memory of building a 1M x 768 index, with the IVF lists in memory and on disk (`--on-disk`).

The docstore is written a block at a time and FAISS is filled from it a block at a time, so the peak
is the index itself plus the BM25 part, not 2-3 copies of every vector; with the lists on disk the
index is a memory-mapped file and the training sample is capped.

    python benchmarks/build_memory.py                    # 1,000,000 chunks of 768 dims, both ways
    python benchmarks/build_memory.py --chunks 20000 --out /tmp/x.md    # smoke

Vectors are random unit vectors of 768 dims (a flat FAISS index costs the same for any); texts are
short real passages (30 words of Wikipedia, reused). The encoder is a random 1-layer model with 768
hidden dims (only its dimension and fingerprint matter: nothing is embedded). The index is written
by ragkit's own transaction (`Index._commit`: docstore, FAISS, BM25, manifest). Each variant runs in
its own process; after each phase it reads the process's peak resident memory (VmHWM: it counts the
pages of mapped files, which the OS can drop and read again) and the peak of its anonymous memory
(RssAnon, sampled every 50 ms: what must fit in RAM).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import transformers

from ragkit import Encoder, EncoderConfig
from ragkit.index import Index
from ragkit.io import read_json_lines
from ragkit.retrieval.chunking import Chunk

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


class AnonymousPeak:
    """The largest RssAnon of this process, sampled every 50 ms on a thread."""

    def __init__(self) -> None:
        self.peak = 0.0
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self) -> None:
        while True:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("RssAnon:"):
                    self.peak = max(self.peak, int(line.split()[1]) / 2**20)
            time.sleep(0.05)


def run_variant(chunks: int, index_dir: Path, on_disk: bool) -> dict:
    """Build the index in this process; the peaks after each phase, the time and what was built."""
    shutil.rmtree(index_dir, ignore_errors=True)
    anonymous = AnonymousPeak()
    encoder = encoder_768()
    texts = passages(FILE_CHUNKS)
    phases = {"loading the encoder and texts": (peak_gib(), anonymous.peak)}
    rng = np.random.default_rng(0)

    def write(store, report, previous) -> dict[str, str]:
        for first in range(0, chunks, FILE_CHUNKS):
            n = min(FILE_CHUNKS, chunks - first)
            part = [Chunk(f"d{first + i}", "", texts[i], 0, len(texts[i]), {}, 40) for i in range(n)]
            vectors = rng.standard_normal((n, 768)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            store.replace_file(f"part{first:08}", str(first), n, part, vectors)
        phases["docstore written"] = (peak_gib(), anonymous.peak)
        return {}

    start = time.perf_counter()
    index = Index.open(index_dir, encoder, on_disk=on_disk)
    report = index._commit(write, kind="synthetic", corpus="synthetic")
    seconds = time.perf_counter() - start
    time.sleep(0.1)  # one more sample
    phases["index built (FAISS + BM25 + manifest)"] = (peak_gib(), anonymous.peak)
    counts = report.counts
    return {"phases": phases, "seconds": seconds, "factory": report.factory, "chunks": counts.chunks}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=1_000_000)
    parser.add_argument("--index", type=Path, default=Path("runs/memory-index"))
    parser.add_argument("--out", type=Path, default=RESULTS / "build_memory.md")
    parser.add_argument("--variant", choices=["memory", "disk"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:  # a child process: one build, its figures on stdout's last line
        print(json.dumps(run_variant(args.chunks, args.index, on_disk=args.variant == "disk")))
        return
    results = {}
    for variant in ("memory", "disk"):
        child = subprocess.run(
            [sys.executable, __file__, "--chunks", str(args.chunks), "--index", str(args.index),
             "--variant", variant],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        results[variant] = json.loads(child.stdout.strip().splitlines()[-1])
        print(variant, results[variant], flush=True)
    shutil.rmtree(args.index, ignore_errors=True)
    raw = args.chunks * 768 * 4 / 2**30
    memory, disk = results["memory"], results["disk"]
    lines = [
        "# Peak memory of a build",
        "",
        f"`python benchmarks/build_memory.py --chunks {args.chunks}`: {memory['chunks']:,} chunks x 768 "
        f"dims ({' / '.join(dict.fromkeys([memory['factory'], disk['factory']]))}), texts of 30 words, "
        "built twice, each in its own process: IVF "
        f"lists in memory ({memory['seconds']:,.0f} s) and on disk with `on_disk` ({disk['seconds']:,.0f} "
        f"s). The vectors alone are {raw:.2f} GiB.",
        "",
        "| after | lists in memory: peak resident GiB | peak anonymous GiB "
        "| lists on disk: peak resident GiB | peak anonymous GiB |",
        "|---|---|---|---|---|",
        *(
            f"| {name} | {m[0]:.2f} | {m[1]:.2f} | {d[0]:.2f} | {d[1]:.2f} |"
            for (name, m), d in zip(memory["phases"].items(), disk["phases"].values(), strict=True)
        ),
        "",
        "Resident memory counts the pages of the memory-mapped lists file that the OS has not dropped; "
        "anonymous memory is what has to fit in RAM.",
    ]
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
