"""Encoding throughput of ragkit's Encoder against sentence-transformers on the same model, in one run.

    python benchmarks/encode_speed.py [--n 512] [--batch-size 32] [--model smollm2-135m]
    python benchmarks/encode_speed.py --devices cpu,cpu     # also ragkit on two worker processes

Both sides run the same weights in bidirectional mode with mean pooling over plain text (sentence-
transformers 6.x would otherwise wrap texts in SmolLM2's chat template and keep the causal mask), and
the script checks that they produce the same vectors before timing them.
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from ragkit import Encoder

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


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
    args = parser.parse_args()

    console = Console()
    texts = msmarco_passages(args.n)
    encoder = Encoder.load(args.model)
    st = sentence_transformer(encoder)
    tokens = sum(min(len(ids), encoder.config.max_length) for ids in encoder.token_ids(texts)[0])

    ours = encoder.encode(texts[:64], batch_size=args.batch_size)  # also warms both up
    theirs = st.encode(texts[:64], batch_size=args.batch_size, normalize_embeddings=True)
    agreement = float((ours * theirs).sum(1).min())
    if agreement < 0.9999:
        raise SystemExit(f"the two systems disagree (min cosine {agreement:.6f}); timings would not compare")

    ragkit_s = best_time(lambda: encoder.encode(texts, batch_size=args.batch_size), args.repeats)
    st_s = best_time(
        lambda: st.encode(texts, batch_size=args.batch_size, normalize_embeddings=True), args.repeats
    )

    rows = [("ragkit Encoder", ragkit_s), ("sentence-transformers", st_s)]
    if args.devices:
        pooled = encoder.encode(texts[:64], batch_size=args.batch_size, devices=args.devices)  # starts them
        pooled_agreement = float((ours * pooled).sum(1).min())
        pooled_s = best_time(
            lambda: encoder.encode(texts, batch_size=args.batch_size, devices=args.devices), args.repeats
        )
        encoder.close()
        rows.append((f"ragkit Encoder, devices {args.devices}", pooled_s))

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
    console.print(f"ratio ragkit / sentence-transformers (texts/s): {st_s / ragkit_s:.2f}x")
    if args.devices:
        console.print(
            f"devices {args.devices} / one process (texts/s): {ragkit_s / pooled_s:.2f}x "
            f"(min cosine to one process: {pooled_agreement:.7f})"
        )


if __name__ == "__main__":
    main()
