"""Chunking one large text file: time and peak memory, tokenized in blocks (ragkit) or in one call.

    python benchmarks/chunk_speed.py --mb 10 50

Each run is a fresh process (peak memory is its own): SmolLM2's tokenizer chunks a file of real
English (Wikipedia paragraphs from ../shared/data, repeated to size) into ragkit's default chunks.
"one call" is what ragkit did before: the whole text through the tokenizer at once.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results"


def text_of(megabytes: float) -> str:
    paragraphs = []
    with open(DATA / "text" / "enwiki_sample_gensim.paragraphs.jsonl") as f:
        for line in f:
            paragraphs += json.loads(line).get("paragraphs", [])
    sample = "\n\n".join(paragraphs)
    size = int(megabytes * 1_000_000)
    return (sample * (size // len(sample) + 1))[:size]


def run_one(megabytes: float, blocks: bool) -> dict:
    from ragkit.corpus import Document
    from ragkit.encoders.loading import load_tokenizer, resolve
    from ragkit.retrieval import chunking

    tokenizer = load_tokenizer(resolve("smollm2-135m"), resolve("smollm2-135m"))
    text = text_of(megabytes)
    if not blocks:
        chunking.BLOCK_CHARS = len(text) + 1
    start = time.perf_counter()
    chunks = chunking.chunk_document(Document("big", text), tokenizer, chunking.ChunkingConfig())
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB on Linux
    return {"mb": megabytes, "blocks": blocks, "chunks": len(chunks), "seconds": seconds, "peak_mib": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, nargs="*", default=[10, 50])
    parser.add_argument("--one-call-max-mb", type=float, default=10, help="skip one-call runs above this")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_one(float(args.child[0]), args.child[1] == "blocks")))
        return
    rows = []
    for mb in args.mb:
        for mode in ("blocks", "one-call"):
            if mode == "one-call" and mb > args.one_call_max_mb:
                continue
            out = subprocess.run(
                [sys.executable, __file__, "--child", str(mb), mode],
                capture_output=True,
                text=True,
                check=True,
            )
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(rows[-1], flush=True)
    lines = [
        "# Chunking one large file",
        "",
        "`python benchmarks/chunk_speed.py`: SmolLM2's tokenizer, ragkit's default chunks (256 tokens, "
        "overlap 32), real Wikipedia text; each row a fresh process.",
        "",
        "| MB | tokenized | chunks | seconds | peak memory MiB |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        mode = "in blocks" if r["blocks"] else "in one call (before)"
        lines.append(
            f"| {r['mb']:g} | {mode} | {r['chunks']:,} | {r['seconds']:.1f} | {r['peak_mib']:,.0f} |"
        )
    (RESULTS / "chunk_speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
