"""What bounds one query's matmuls on this CPU: memory bandwidth, or the kernels at a query's few rows?

    python benchmarks/matmul_kernels.py       # on idle cores; writes results/matmul_kernels.md

A query of ~17 tokens (the query instruction included) multiplies 17 rows by every linear layer of the
built-in encoder (SmolLM2-135M: 30 layers, 106M weights, 212 MB in bf16). If reading the weights were
the bound, the time would be 212 MB over the memory's bandwidth. Measured here: the bandwidth (a
sum over 1 GiB of fp32, 2 threads), then the same layer shapes with random weights through each kernel
torch offers on CPU, on a 17-row input: bf16 `F.linear` (oneDNN), ragkit's packed `BF16Linear`, the
product transposed (weights as the long side), fp32, and weight-only int8 (`_weight_int8pack_mm`).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ragkit.encoders.precision import BF16Linear

RESULTS = Path(__file__).resolve().parent / "results"
# SmolLM2-135M's linear layers per block (out, in): q and o (576 x 576), k and v (192 x 576, grouped
# query attention), gate and up (1536 x 576), down (576 x 1536); 30 blocks.
SHAPES = [(576, 576)] * 2 + [(192, 576)] * 2 + [(1536, 576)] * 2 + [(576, 1536)]
BLOCKS = 30


def median_seconds(calls: list, rounds: int) -> float:
    with torch.inference_mode():
        for _ in range(3):
            for call in calls:
                call()
        times = []
        for _ in range(rounds):
            start = time.perf_counter()
            for call in calls:
                call()
            times.append(time.perf_counter() - start)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=17, help="rows of the input: a query's tokens")
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(2)
    big = torch.ones(256 * 1024 * 1024)  # 1 GiB of fp32
    bandwidth = big.numel() * 4 / median_seconds([big.sum], 5)
    del big

    weights = [torch.randn(o, i) for _ in range(BLOCKS) for o, i in SHAPES]
    bf16 = [w.to(torch.bfloat16) for w in weights]
    x32 = {i: torch.randn(args.tokens, i) for i in (576, 1536)}
    x16 = {i: x.to(torch.bfloat16) for i, x in x32.items()}
    packed = []
    for w in weights:
        linear = torch.nn.Linear(w.shape[1], w.shape[0], bias=False)
        linear.weight.data = w
        packed.append(BF16Linear(linear))
    int8 = [(w.to(torch.int8), torch.ones(w.shape[0], dtype=torch.bfloat16)) for w in weights]
    flops = 2 * args.tokens * sum(w.numel() for w in weights)
    bf16_bytes = sum(w.numel() * 2 for w in weights)
    kernels = {
        "bf16 F.linear (oneDNN)": ([lambda w=w: F.linear(x16[w.shape[1]], w) for w in bf16], bf16_bytes),
        "bf16 packed once (ragkit's BF16Linear)": (
            [lambda p=p: p(x32[p.in_features]) for p in packed],
            bf16_bytes,
        ),
        "bf16, weights as the long side (W @ x.T)": (
            [lambda w=w: torch.mm(w, x16[w.shape[1]].T) for w in bf16],
            bf16_bytes,
        ),
        "fp32 F.linear": ([lambda w=w: F.linear(x32[w.shape[1]], w) for w in weights], 2 * bf16_bytes),
        "int8 weights, bf16 activations": (
            [lambda q=q: torch._weight_int8pack_mm(x16[q[0].shape[1]], q[0], q[1]) for q in int8],
            bf16_bytes // 2,
        ),
    }
    lines = [
        "# One query's matmuls: the memory's bound against the kernels'",
        "",
        f"`python benchmarks/matmul_kernels.py` (2 threads, {args.tokens} rows: a query's tokens with the "
        f"query instruction; SmolLM2-135M's {len(weights)} linear layers, random weights, "
        f"{bf16_bytes / 1e6:.0f} MB in bf16, {flops / 1e9:.1f} GFLOP).",
        "",
        f"Memory bandwidth (sum over 1 GiB of fp32): **{bandwidth / 1e9:.1f} GB/s**, so reading the bf16 "
        f"weights once would take {bf16_bytes / bandwidth * 1e3:.1f} ms.",
        "",
        "| kernel | ms (median) | weights read at | GFLOP/s |",
        "|---|---|---|---|",
    ]
    for name, (calls, nbytes) in kernels.items():
        seconds = median_seconds(calls, args.rounds)
        rate, speed = nbytes / seconds / 1e9, flops / seconds / 1e9
        lines.append(f"| {name} | {seconds * 1e3:.1f} | {rate:.1f} GB/s | {speed:.0f} |")
        print(lines[-1], flush=True)
    (RESULTS / "matmul_kernels.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
