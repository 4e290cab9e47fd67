"""What an update costs against a full build: one changed file in a 100k-chunk index, in one run.

    python benchmarks/index_update.py                      # 1,000 files x 100 passages, the built-in encoder
    python benchmarks/index_update.py --files 20 --out /tmp/x.md    # smoke

The corpus is `--files` JSON-lines files of `--per-file` real Wikipedia passages (~100 words, one
chunk each) under runs/update-corpus/. Embedding 100k chunks with a 135M model takes hours on a CPU,
so the base index is built by the real `Index.build` (reading, chunking, docstore, FAISS, BM25,
manifest) with the encoder's forward pass replaced by mixtures of real vectors, and the full build's
embedding time is the corpus's tokens at the encoder's tokens/s measured here (marked as such).
Then one file is changed and `Index.build` runs again with the real encoder: everything measured.
Time it on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
from retrieval_speed import pieces as passages  # n distinct ~100-word real passages

from ragkit import Encoder
from ragkit.index import Index

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results"


def write_corpus(root: Path, files: int, per_file: int) -> None:
    texts = passages(files * per_file)
    root.mkdir(parents=True)
    for f in range(files):
        rows = texts[f * per_file : (f + 1) * per_file]
        lines = [json.dumps({"_id": f"f{f}-{i}", "text": t}) for i, t in enumerate(rows)]
        (root / f"part{f:05}.jsonl").write_text("\n".join(lines) + "\n")


class MixedVectors:
    """Stands in for `encode_documents` while the base index is built: each text gets a normalised
    mixture of two real vectors plus noise (FAISS costs the same for any vectors of the right size)."""

    def __init__(self, encoder: Encoder, seed: int = 0) -> None:
        sample = passages(256)
        self.real = encoder.encode_documents(sample, show_progress=False)
        self.rng = np.random.default_rng(seed)
        self.tokens = 0

    def __call__(self, texts, **kwargs) -> np.ndarray:
        mix = self.real[self.rng.integers(0, len(self.real), (len(texts), 2))].sum(axis=1)
        mix += 0.05 * self.rng.standard_normal(mix.shape).astype(np.float32)
        return mix / np.linalg.norm(mix, axis=1, keepdims=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--per-file", type=int, default=100)
    parser.add_argument("--model", default="llm2vec-smollm2-135m")
    parser.add_argument("--work", type=Path, default=Path("runs/update-bench"))
    parser.add_argument("--out", type=Path, default=RESULTS / "index_update.md")
    args = parser.parse_args()

    shutil.rmtree(args.work, ignore_errors=True)
    corpus, index_dir = args.work / "corpus", args.work / "index"
    write_corpus(corpus, args.files, args.per_file)
    encoder = Encoder.load(args.model)

    real_encode = encoder.encode_documents
    encoder.encode_documents = MixedVectors(encoder)
    start = time.perf_counter()
    base = Index.build(corpus, encoder, index_dir, show_progress=True)
    base_seconds = time.perf_counter() - start
    encoder.encode_documents = real_encode

    changed = corpus / "part00000.jsonl"
    rows = [json.loads(line) for line in changed.read_text().splitlines()]
    rows = [{**r, "text": r["text"] + " (revised)"} for r in rows]
    changed.write_text("".join(json.dumps(r) + "\n" for r in rows))
    start = time.perf_counter()
    update = Index.build(corpus, encoder, index_dir, show_progress=False)
    update_seconds = time.perf_counter() - start
    rate = update.tokens_embedded / update.embed_seconds  # the real encoder's tokens/s, measured here
    model_seconds = base.tokens_embedded / rate  # what the encoder's forward passes would add
    full_embed = base.embed_seconds + model_seconds  # reading, chunking and storing were measured
    full_seconds = base_seconds + model_seconds
    print(update.summary())

    c = base.counts
    lines = [
        "# Index update vs full build",
        "",
        f"`python benchmarks/index_update.py --files {args.files} --per-file {args.per_file}` "
        f"({args.model}, {c.chunks:,} chunks of real Wikipedia text in {c.files:,} files, "
        f"{base.factory}, {base.transform.dim_out} dims). The update changes every passage of one file.",
        "",
        "| | chunks embedded | reading, chunking, embedding, storing s | index files s | total s |",
        "|---|---|---|---|---|",
        f"| full build | {base.chunks_embedded:,} | {full_embed:,.0f} ({base.embed_seconds:,.0f} measured "
        f"+ the encoder's {base.tokens_embedded:,} tokens at {rate:,.0f} tokens/s) | "
        f"{base_seconds - base.embed_seconds:,.1f} | {full_seconds:,.0f} |",
        f"| update, 1 file changed | {update.chunks_embedded} | {update.embed_seconds:.1f} | "
        f"{update_seconds - update.embed_seconds:.1f} | {update_seconds:.1f} |",
        "",
        f"**The update took {100 * update_seconds / full_seconds:.2f}% of the full build** "
        f"(generation {update.generation}, in place: {update.vectors_added} vectors added, "
        f"{update.vectors_removed} removed; no docstore copy, no retraining). "
        '"Index files" is listing and hashing the corpus\'s files, the FAISS index read, updated by id '
        "and written whole (a full build: trained and filled), and the BM25 part rebuilt from every "
        "chunk's text.",
    ]
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
