"""CPU fast path: encode speed, one-query latency, cosine to fp32 and nDCG@10 per precision, in one run.

    python benchmarks/cpu_precision.py                  # speed + cosine, then nDCG on three folders
    python benchmarks/cpu_precision.py --part speed     # speed + cosine only (needs idle cores)
    python benchmarks/cpu_precision.py --part ndcg      # nDCG only (fine next to other work)

Precisions (ragkit/encoders/precision.py): fp32; bf16 (autocast, linear weights cast to bf16 and
packed for oneDNN once: `BF16Linear`); bf16 autocast over fp32 weights (cast and packed on every
call, as autocast alone does); the whole model in bf16 (`dtype="bf16"`, not a ragkit
default anywhere, for comparison); int8 (per-channel weights x per-token activations with
SmoothQuant, ragkit/encoders/int8.py). Speed is real
(unpadded) tokens per second encoding the same 512 MS MARCO passages, one precision after the other,
best of `--repeats`; one-query latency is the median of encoding 10 questions one at a time, 5 times;
cosine is each passage's vector against fp32's. nDCG@10 uses ablation.md's settings (1500 documents
keeping the judged ones, documents cut at 128 tokens, MTEB instructions). The rule for the default:
bf16 where the CPU computes it natively, if it keeps nDCG@10 within 0.01 of fp32 on every folder;
int8 only if it is both faster than bf16 and at least as close to fp32 (cosine and nDCG@10).
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from ragkit import Encoder
from ragkit.encoders.precision import native_bf16
from ragkit.eval import DenseSearch, evaluate, load_task
from ragkit.eval.models import RagkitModel

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results"
# label -> Encoder.load options
SETTINGS = {
    "fp32": {"precision": "fp32"},
    "bf16": {"precision": "bf16"},
    "bf16, autocast over fp32 weights": {"precision": "bf16", "dtype": "fp32"},
    "bf16, whole model": {"precision": "fp32", "dtype": "bf16"},
    "int8": {"precision": "int8"},
}
MAX_NDCG_DROP = 0.01
QUESTIONS = [
    "how do plants make energy from sunlight?",
    "what causes the northern lights",
    "who wrote the declaration of independence",
    "symptoms of vitamin d deficiency",
    "how long does it take to boil an egg",
    "boundary layer transition at hypersonic speeds",
    "what is the capital of australia",
    "does coffee raise blood pressure",
    "how do black holes form",
    "best way to learn a second language",
]


def msmarco_passages(n: int) -> list[str]:
    import gzip

    with gzip.open(DATA / "msmarco-subset" / "corpus.jsonl.gz", "rt") as f:
        docs = [json.loads(line) for _, line in zip(range(n), f, strict=False)]
    return [f"{d['title']} {d['text']}".strip() for d in docs]


def speed(model: str, texts: list[str], repeats: int) -> dict[str, dict]:
    out, reference = {}, None
    for label, options in SETTINGS.items():
        encoder = Encoder.load(model, **options)
        tokens = sum(len(ids) for ids in encoder.token_ids(texts)[0])
        encoder.encode(texts[:32], show_progress=False)  # warm-up
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            vectors = encoder.encode(texts, show_progress=False)
            times.append(time.perf_counter() - start)
        reference = vectors if reference is None else reference
        cosine = (vectors * reference).sum(axis=1)
        single = []
        for _ in range(5):
            for question in QUESTIONS:
                start = time.perf_counter()
                encoder.encode_queries([question], show_progress=False)
                single.append(1000 * (time.perf_counter() - start))
        out[label] = {
            "tokens_per_s": tokens / min(times),
            "texts_per_s": len(texts) / min(times),
            "min_cosine": float(cosine.min()),
            "mean_cosine": float(cosine.mean()),
            "query_ms_p50": float(np.median(single)),
        }
        print(label, out[label], flush=True)
        del encoder
        gc.collect()
    return out


def ndcg(
    model: str, folders: list[str], max_docs: int, max_doc_tokens: int, labels: list[str], out: dict, save
) -> dict[str, dict]:
    for label in labels:
        options = SETTINGS[label]
        if all(f in out.get(label, {}) for f in folders):
            continue
        system = DenseSearch(RagkitModel(Encoder.load(model, **options)), max_doc_tokens=max_doc_tokens)
        system.label = label
        out.setdefault(label, {})
        for folder in folders:
            (row,) = evaluate([system], [load_task(DATA / folder)], output=None, max_docs=max_docs)
            out[label][folder] = row.scores["ndcg_at_10"]
            print(label, folder, out[label][folder], flush=True)
            save()  # each cell as it comes: a long run can stop and go on
        del system
        gc.collect()
    return out


def choose(results: dict) -> str:
    """The CPU default the rule gives on this machine's measurements (see the module docstring)."""
    speed, scores = results["speed"], results["ndcg"]
    fp32 = scores.get("fp32", {})

    def drop(label: str) -> float:  # the largest nDCG@10 loss against fp32 over the folders
        return max((v - scores.get(label, {}).get(f, -1) for f, v in fp32.items()), default=1.0)

    chosen = "bf16" if results.get("native_bf16") and drop("bf16") <= MAX_NDCG_DROP else "fp32"
    if "int8" in speed and chosen in speed:
        faster = speed["int8"]["tokens_per_s"] > speed[chosen]["tokens_per_s"]
        closer = speed["int8"]["min_cosine"] >= speed[chosen]["min_cosine"] and drop("int8") <= drop(chosen)
        if faster and closer:
            chosen = "int8"
    return chosen


def report(results: dict) -> str:
    speed_rows, scores = results["speed"], results["ndcg"]
    folders = sorted({f for s in scores.values() for f in s})
    base = speed_rows.get("fp32", {}).get("tokens_per_s")
    lines = [
        "# CPU fast path: inference precision",
        "",
        f"`python benchmarks/cpu_precision.py` ({results['model']}, {results['threads']} threads, "
        f"{results['n']} MS MARCO passages, batch 32, best of {results['repeats']}; one precision after "
        "the other on idle cores). nDCG@10 with ablation.md's settings (1500 documents, 128 tokens).",
        "",
        "| precision | tokens/s | x fp32 | one query, p50 ms | min cosine | mean cosine | "
        + " | ".join(f"nDCG@10 {f}" for f in folders)
        + " |",
        "|---|---|---|---|---|---|" + "---|" * len(folders),
    ]
    for label, s in speed_rows.items():
        cells = [f"{scores[label][f]:.4f}" if f in scores.get(label, {}) else "–" for f in folders]
        lines.append(
            f"| {label} | {s['tokens_per_s']:,.0f} | {s['tokens_per_s'] / base:.2f} | "
            f"{s.get('query_ms_p50', float('nan')):.1f} | {s['min_cosine']:.5f} | {s['mean_cosine']:.5f} | "
            + " | ".join(cells)
            + " |"
        )
    lines += [
        "",
        f"Rule: bf16 where the CPU computes it natively (here: {bool(results.get('native_bf16'))}) if its "
        f"nDCG@10 is within {MAX_NDCG_DROP} of fp32 on every folder, else fp32; int8 only if it is faster "
        "than that and at least as close to fp32 in min cosine and nDCG@10. Chosen on this machine: "
        f"**{choose(results)}** (ragkit/encoders/precision.py `default_precision`; `--precision` switches).",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="llm2vec-smollm2-135m")
    parser.add_argument("--part", choices=("all", "speed", "ndcg"), default="all")
    parser.add_argument("--n", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--folders", nargs="+", default=["cranfield", "scifact", "cisi"])
    parser.add_argument("--max-docs", type=int, default=1500)
    parser.add_argument("--max-doc-tokens", type=int, default=128)
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    args = parser.parse_args()
    store = RESULTS / "cpu_precision.json"
    results = json.loads(store.read_text()) if store.is_file() else {"speed": {}, "ndcg": {}}
    results["model"] = args.model
    results["native_bf16"] = native_bf16(torch.device("cpu"))
    if args.part in ("all", "speed"):
        results.update(n=args.n, repeats=args.repeats, threads=torch.get_num_threads())
        results["speed"] = speed(args.model, msmarco_passages(args.n), args.repeats)
        store.write_text(json.dumps(results, indent=1) + "\n")
    if args.part in ("all", "ndcg"):

        def save() -> None:
            store.write_text(json.dumps(results, indent=1) + "\n")

        folders, settings = args.folders, args.settings
        ndcg(args.model, folders, args.max_docs, args.max_doc_tokens, settings, results["ndcg"], save)
        store.write_text(json.dumps(results, indent=1) + "\n")
    if results["speed"]:
        (RESULTS / "cpu_precision.md").write_text(report(results))
        table = Table(title="CPU precision")
        for column in ("precision", "tokens/s", "x fp32", "min cosine", *args.folders):
            table.add_column(column, justify="right")
        base = results["speed"]["fp32"]["tokens_per_s"]
        for label, s in results["speed"].items():
            table.add_row(
                label,
                f"{s['tokens_per_s']:,.0f}",
                f"{s['tokens_per_s'] / base:.2f}",
                f"{s['min_cosine']:.5f}",
                *(f"{results['ndcg'].get(label, {}).get(f, np.nan):.4f}" for f in args.folders),
            )
        Console().print(table)
        print("chosen:", choose(results))


if __name__ == "__main__":
    main()
