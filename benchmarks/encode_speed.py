"""Encoding throughput of ragkit's Encoder against sentence-transformers on the same model, in one run.

    python benchmarks/encode_speed.py [--n 512] [--batch-size 32] [--model smollm2-135m]
    python benchmarks/encode_speed.py --devices cpu,cpu     # also ragkit on two worker processes
    python benchmarks/encode_speed.py --llm2vec             # also the reference llm2vec 0.2.3

`--llm2vec` runs the reference in its own environment (../shared/peers/setup_llm2vec.sh builds it
under $PEERS, default ~/.cache/ragkit-peers) on the same SmolLM2 weights, the same passages and
batch size, after a warm-up, best of `--repeats`; its vectors must match ragkit's before it is timed.
The table also goes to benchmarks/results/encode_speed.md.

Both sides run the same weights in bidirectional mode with mean pooling over plain text (sentence-
transformers 6.x would otherwise wrap texts in SmolLM2's chat template and keep the causal mask), and
the script checks that they produce the same vectors before timing them (ragkit in fp32, as the
peers run). ragkit is then timed at fp32 and at its default precision (bf16 where the CPU computes
it natively), whose min cosine to fp32 is printed; the ratios are the default's speed over each.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from ragkit import Encoder

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results"
PEERS = Path(os.environ.get("PEERS", Path.home() / ".cache" / "ragkit-peers"))
REFERENCE = r"""
import json, sys, time, numpy as np, torch
from llm2vec import LLM2Vec
texts, batch, repeats = json.load(open(sys.argv[1])), int(sys.argv[3]), int(sys.argv[4])
m = LLM2Vec.from_pretrained(
    sys.argv[2], enable_bidirectional=True, pooling_mode="mean", torch_dtype=torch.float32
)
m.encode(texts[:64], batch_size=batch, show_progress_bar=False, device="cpu")  # warm-up
times = []
for _ in range(repeats):
    start = time.perf_counter()
    vectors = m.encode(texts, batch_size=batch, show_progress_bar=False, device="cpu").float().numpy()
    times.append(time.perf_counter() - start)
np.save(sys.argv[5], vectors)
print(min(times))
"""


def reference_llm2vec(texts: list[str], batch_size: int, repeats: int) -> tuple[float, np.ndarray]:
    """Seconds (best of `repeats`) and vectors of the reference llm2vec on `texts`, in its own venv."""
    python = PEERS / "llm2vec-venv" / "bin" / "python"
    if not python.is_file():
        raise SystemExit(f"{python} not found: run bash ../shared/peers/setup_llm2vec.sh first")
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "texts.json").write_text(json.dumps(texts))
        (Path(tmp) / "ref.py").write_text(REFERENCE)
        done = subprocess.run(
            [
                str(python),
                str(Path(tmp) / "ref.py"),
                str(Path(tmp) / "texts.json"),
                str(PEERS / "smollm2-hf-llm2vec"),
                str(batch_size),
                str(repeats),
                str(Path(tmp) / "vectors.npy"),
            ],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise SystemExit(f"the reference llm2vec failed:\n{done.stderr[-3000:]}")
        vectors = np.load(Path(tmp) / "vectors.npy")
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return float(done.stdout.strip().splitlines()[-1]), vectors


def msmarco_passages(n: int) -> list[str]:
    path = DATA / "msmarco-subset" / "corpus.jsonl.gz"
    if not path.is_file():
        raise SystemExit(f"{path} not found: this benchmark reads the real passages in ../shared/data")
    with gzip.open(path, "rt") as f:
        docs = [json.loads(line) for _, line in zip(range(n), f, strict=False)]
    return [f"{d['title']} {d['text']}".strip() for d in docs]


def sentence_transformer(encoder: Encoder):
    from sentence_transformers import SentenceTransformer, models

    from ragkit.encoders.loading import resolve

    transformer = models.Transformer(resolve(encoder.config.source), max_seq_length=encoder.config.max_length)
    transformer.modality_config.pop("message", None)  # plain text, not the chat template
    transformer.auto_model.config.is_causal = not encoder.config.bidirectional  # config_kwargs is ignored
    pooling = models.Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")
    return SentenceTransformer(modules=[transformer, pooling], device=str(encoder.device))


def best_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--n", type=int, default=512, help="passages to encode")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per system; the best is kept")
    parser.add_argument("--devices", help="also time ragkit on these devices, a worker process each")
    parser.add_argument("--llm2vec", action="store_true", help="also time the reference llm2vec 0.2.3")
    args = parser.parse_args()

    console = Console()
    texts = msmarco_passages(args.n)
    encoder = Encoder.load(args.model, precision="fp32")  # as the peers compute
    default = Encoder.load(args.model)  # ragkit's default precision on this machine
    st = sentence_transformer(encoder)
    tokens = sum(min(len(ids), encoder.config.max_length) for ids in encoder.token_ids(texts)[0])

    ours = encoder.encode(texts[:64], batch_size=args.batch_size)  # also warms both up
    theirs = st.encode(texts[:64], batch_size=args.batch_size, normalize_embeddings=True)
    agreement = float((ours * theirs).sum(1).min())
    if agreement < 0.9999:
        raise SystemExit(f"the two systems disagree (min cosine {agreement:.6f}); timings would not compare")

    fp32_s = best_time(lambda: encoder.encode(texts, batch_size=args.batch_size), args.repeats)
    default.encode(texts[:64], batch_size=args.batch_size)  # warm-up
    default_cosine = float(
        (default.encode(texts, batch_size=args.batch_size) * encoder.encode(texts)).sum(1).min()
    )
    ragkit_s = best_time(lambda: default.encode(texts, batch_size=args.batch_size), args.repeats)
    st_s = best_time(
        lambda: st.encode(texts, batch_size=args.batch_size, normalize_embeddings=True), args.repeats
    )

    rows = [
        (f"ragkit Encoder, default ({default.precision})", ragkit_s),
        ("ragkit Encoder, fp32", fp32_s),
        ("sentence-transformers (fp32)", st_s),
    ]
    if args.devices:
        pooled = encoder.encode(texts[:64], batch_size=args.batch_size, devices=args.devices)  # starts them
        pooled_agreement = float((ours * pooled).sum(1).min())
        pooled_s = best_time(
            lambda: encoder.encode(texts, batch_size=args.batch_size, devices=args.devices), args.repeats
        )
        encoder.close()
        rows.append((f"ragkit Encoder, devices {args.devices}", pooled_s))
    if args.llm2vec:
        reference_s, reference_vectors = reference_llm2vec(texts, args.batch_size, args.repeats)
        reference_agreement = float((encoder.encode(texts) * reference_vectors).sum(1).min())
        if reference_agreement < 0.9999:
            raise SystemExit(f"ragkit and llm2vec disagree (min cosine {reference_agreement:.6f})")
        rows.append(("reference llm2vec 0.2.3 (transformers 4.44, fp32)", reference_s))

    table = Table(
        title=f"{args.n} MS MARCO passages, {tokens} tokens, batch {args.batch_size}, "
        f"{encoder.device}, {torch.get_num_threads()} threads, {encoder.model.dtype}"
    )
    for column in ("system", "seconds", "texts/s", "tokens/s"):
        table.add_column(column, justify="right")
    for name, seconds in rows:
        table.add_row(name, f"{seconds:.2f}", f"{args.n / seconds:.1f}", f"{tokens / seconds:.0f}")
    console.print(table)
    console.print(f"min cosine between the two systems' vectors: {agreement:.7f}")
    console.print(f"min cosine of ragkit's default ({default.precision}) to fp32: {default_cosine:.5f}")
    console.print(f"ratio ragkit / sentence-transformers (texts/s): {st_s / ragkit_s:.2f}x")
    if args.llm2vec:
        console.print(
            f"ratio ragkit / reference llm2vec (texts/s): {reference_s / ragkit_s:.2f}x "
            f"(min cosine to ragkit: {reference_agreement:.7f})"
        )
    lines = [
        "# Encoding speed",
        "",
        f"`python benchmarks/encode_speed.py{' --llm2vec' if args.llm2vec else ''}`: {args.n} MS MARCO "
        f"passages ({tokens:,} tokens), {args.model}, batch {args.batch_size}, {encoder.device}, "
        f"{torch.get_num_threads()} threads; best of {args.repeats}, one system after the other. ragkit's "
        f"default precision here is {default.precision} (min cosine to fp32 {default_cosine:.4f}); the last "
        "column is its speed over each row.",
        "",
        "| system | seconds | texts/s | tokens/s | ragkit default's speed over it |",
        "|---|---|---|---|---|",
        *(
            f"| {name} | {seconds:.2f} | {args.n / seconds:.1f} | {tokens / seconds:,.0f} | "
            f"{seconds / ragkit_s:.2f}x |"
            for name, seconds in rows
        ),
    ]
    (RESULTS / "encode_speed.md").write_text("\n".join(lines) + "\n")
    if args.devices:
        console.print(
            f"devices {args.devices} / one process (texts/s): {ragkit_s / pooled_s:.2f}x "
            f"(min cosine to one process: {pooled_agreement:.7f})"
        )


if __name__ == "__main__":
    main()
