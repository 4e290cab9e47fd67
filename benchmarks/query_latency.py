"""One-query encode latency of the ways to run the linear layers, interleaved, and the matmul floor.

    python benchmarks/query_latency.py            # on idle cores; writes results/query_latency.md

A short query is latency-bound by streaming the weights, not by FLOPs: every linear layer's weights
are read once per query. The rows (each encoder loaded once, then one query each in turn, so drift of
the machine hits every row alike):
- bf16, packed: ragkit's CPU default (`BF16Linear`, ragkit/encoders/precision.py): bf16 weights packed
  for oneDNN once at load.
- bf16, cast once: bf16 weights in the plain layout (ragkit 0.3): oneDNN reorders them on every call.
- bf16 autocast over fp32 weights: cast and reorder on every call.
- fp32.
"matmuls alone" runs only the packed linear layers, in model order, on a query-sized input: what
the query costs with everything else (attention, norms, Python) free. It bounds what a leaner
forward could reach with these kernels.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from cpu_precision import QUESTIONS  # the same questions as its one-query column

from ragkit import Encoder
from ragkit.encoders.precision import BF16Linear

RESULTS = Path(__file__).resolve().parent / "results"


def cast_once(model: str) -> Encoder:
    encoder = Encoder.load(model, precision="bf16", dtype="fp32")
    for module in encoder.model.modules():
        if isinstance(module, torch.nn.Linear):
            module.to(torch.bfloat16)
    return encoder


def matmuls_alone(encoder: Encoder, tokens: int) -> callable:
    layers = [m for m in encoder.model.modules() if isinstance(m, BF16Linear)]

    def run(_: str) -> None:
        with torch.inference_mode():
            for layer in layers:
                layer(torch.zeros(1, tokens, layer.in_features))

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="llm2vec-smollm2-135m")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--out", type=Path, default=RESULTS / "query_latency.md")
    args = parser.parse_args()
    packed = Encoder.load(args.model, precision="bf16")
    ids, _ = packed.token_ids(QUESTIONS, packed.config.query_instruction)
    tokens = int(np.median([len(row) for row in ids]))
    weights = sum(m.in_features * m.out_features for m in packed.model.modules() if isinstance(m, BF16Linear))
    autocast = Encoder.load(args.model, precision="bf16", dtype="fp32")
    rows = {
        "bf16, packed (default)": packed.encode_queries,
        "bf16, cast once (0.3)": cast_once(args.model).encode_queries,
        "bf16 autocast over fp32 weights": autocast.encode_queries,
        "fp32": Encoder.load(args.model, precision="fp32").encode_queries,
        "matmuls alone (bf16, packed)": matmuls_alone(packed, tokens),
    }
    times: dict[str, list[float]] = {name: [] for name in rows}
    for run in rows.values():
        run(QUESTIONS[0])  # warm-up
    for _ in range(args.rounds):
        for name, run in rows.items():
            for question in QUESTIONS:
                start = time.perf_counter()
                run([question] if "alone" not in name else question)
                times[name].append(1000 * (time.perf_counter() - start))
    floor = float(np.median(times["matmuls alone (bf16, packed)"]))
    lines = [
        "# One-query latency",
        "",
        f"`python benchmarks/query_latency.py` ({args.model}, {torch.get_num_threads()} threads, "
        f"{len(QUESTIONS)} questions x {args.rounds} rounds, interleaved; median {tokens} tokens with "
        f"the query instruction). Linear weights: {weights / 1e6:.0f}M, {2 * weights / 1e6:.0f} MB in "
        f"bf16, read once per query: the matmuls alone stream them at {2 * weights / floor / 1e6:.1f} GB/s.",
        "",
        "| linear layers | p50 ms | p90 ms | x fp32 |",
        "|---|---|---|---|",
    ]
    fp32 = float(np.median(times["fp32"]))
    for name, values in times.items():
        p50, p90 = np.percentile(values, [50, 90])
        lines.append(f"| {name} | {p50:.1f} | {p90:.1f} | {fp32 / p50:.2f} |")
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
