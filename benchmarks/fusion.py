"""Hybrid search: does dense + BM25 fusion beat BM25, and at what weight?

    python benchmarks/fusion.py                                  # choose on two dev splits, report the six
    python benchmarks/fusion.py --folders nfcorpus-processed     # add or redo folders in fusion.json

The method and dense weight are chosen by their mean over dev splits (by default the SQuAD dev folder
that `benchmarks/supervised_data.py --dev` holds out of training and PubMedQA's questions, which no
encoder here trained on: `--pubmedqa-dev`; never a folder reported here), then
every setting is reported on the six shared BEIR folders, with the same subsampling and document
cap as benchmarks/ablation.py (so its cached corpus vectors are reused). Writes
benchmarks/results/fusion.md and fusion.png (nDCG@10 against the dense weight).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from ragkit.eval import DenseSearch, evaluate, load_task
from ragkit.eval.bm25 import BM25Search
from ragkit.eval.models import load_eval_model
from ragkit.eval.search import FusionSearch

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results"
FOLDERS = ["cranfield", "cisi", "scifact", "nfcorpus-processed", "msmarco-subset", "dbpedia-subset"]
WEIGHTS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
DEV_INSTRUCTION = "Retrieve Wikipedia passages that answer the question"  # SQuAD's E5 instruction


def score(
    folder: Path, dense: DenseSearch, split: str | None, instruction: str | None, max_docs: int
) -> dict:
    """nDCG@10 of dense, BM25 and every fused setting on one folder: {label: nDCG@10}."""
    lexical, runs = BM25Search(), {}
    fused = [
        FusionSearch(dense, lexical, method=method, weight=w, runs=runs)
        for method in ("rrf", "weighted")
        for w in WEIGHTS
    ]
    task = load_task(folder, split, instruction)
    rows = evaluate([dense, lexical, *fused], [task], output=None, max_docs=max_docs)
    return {"dense": rows[0].ndcg_at_10, "bm25": rows[1].ndcg_at_10} | {
        f"{s.method} {s.weight:g}": r.ndcg_at_10 for s, r in zip(fused, rows[2:], strict=True)
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dev",
        type=Path,
        nargs="+",
        default=[Path("runs/squad-dev500"), Path("runs/pubmedqa-dev")],
        help="BEIR folders with a dev split; the setting with the best mean over them is chosen",
    )
    parser.add_argument("--model", default="llm2vec-smollm2-135m")
    parser.add_argument("--folders", nargs="*", default=FOLDERS)
    parser.add_argument("--max-docs", type=int, default=1500)
    parser.add_argument("--max-doc-tokens", type=int, default=128)
    parser.add_argument("--report", action="store_true", help="only rewrite fusion.md/.png from fusion.json")
    args = parser.parse_args()
    for folder in [] if args.report else args.dev:
        if not (folder / "qrels" / "dev.tsv").is_file():
            raise SystemExit(
                f"{folder} has no dev split; make them: python benchmarks/supervised_data.py "
                "runs/supervised-data --dev runs/squad-dev --pubmedqa-dev runs/pubmedqa-dev"
            )

    store = RESULTS / "fusion.json"
    stored = json.loads(store.read_text()) if store.is_file() else {}
    if args.report:
        devs, test = stored["dev"], stored["folders"]
    else:
        dense = DenseSearch(load_eval_model(args.model), max_doc_tokens=args.max_doc_tokens)
        devs = {
            folder.name: score(
                folder, dense, "dev", DEV_INSTRUCTION if "squad" in folder.name else None, args.max_docs
            )
            for folder in args.dev
        }
        new = {f: score(DATA / f, dense, None, None, args.max_docs) for f in args.folders}
        test = {**stored.get("folders", {}), **new}
    dev = {label: sum(d[label] for d in devs.values()) / len(devs) for label in next(iter(devs.values()))}
    fused = [k for k in dev if k not in ("dense", "bm25")]
    chosen = max(fused, key=dev.get)
    folders = [f for f in FOLDERS if f in test] + [f for f in test if f not in FOLDERS]
    # The product default (ragkit/index/fusion.py): the dev-best setting among those that never score
    # below either of their parts on a reported folder; dense if no setting is that safe.
    safe = [k for k in fused if all(test[f][k] >= max(test[f]["dense"], test[f]["bm25"]) for f in folders)]
    default = max(safe, key=dev.get) if safe else "dense"
    store.write_text(
        json.dumps({"dev": devs, "chosen": chosen, "default": default, "folders": test}, indent=1) + "\n"
    )

    labels = list(dev)
    dev_names = list(devs)
    lines = [
        f"# Dense ({args.model}) + BM25 fusion",
        "",
        f"Produced by `python benchmarks/fusion.py` (--folders adds folders to fusion.json). nDCG@10; the "
        "weight is the dense share (rrf: reciprocal rank fusion, k 60, weighted by it; weighted: min-max "
        "normalised scores). The setting is chosen by its mean over the dev splits, never a folder reported "
        f"here ({', '.join(dev_names)}: SQuAD questions held out of training, PubMedQA questions no "
        f"encoder here trained on): **{chosen}**. Folders as in ablation.md (--max-docs {args.max_docs}, "
        f"--max-doc-tokens {args.max_doc_tokens}).",
        "",
        f"Default of `ragkit query` / `Retriever.search`: **{default}**, the dev-best setting among "
        "those that never score below either of their parts on a folder reported here (dense if none "
        "is): the reported folders thus choose among settings, so their scores for it are not held-out "
        f'estimates. `mode="hybrid"` without a setting uses **{default if default != "dense" else chosen}**. '
        f"Folders measured: {len(folders)} of {len(FOLDERS)}.",
        "",
        "| setting | " + " | ".join(dev_names) + " | " + " | ".join(folders) + " | mean | beats BM25 on |",
        "|---" * (len(folders) + len(dev_names) + 3) + "|",
    ]
    for label in labels:
        values = [test[f][label] for f in folders]
        wins = sum(v > test[f]["bm25"] for v, f in zip(values, folders, strict=True))
        name = f"**{label}**" if label == chosen else label
        name += " (default)" if label == default else ""
        cells = " | ".join(f"{v:.3f}" for v in values)
        dev_cells = " | ".join(f"{devs[d][label]:.3f}" for d in dev_names)
        lines.append(
            f"| {name} | {dev_cells} | {cells} | {sum(values) / len(values):.3f} | "
            f"{'–' if label == 'bm25' else f'{wins}/{len(values)}'} |"
        )
    (RESULTS / "fusion.md").write_text("\n".join(lines) + "\n")

    figure, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, method in zip(axes, ("rrf", "weighted"), strict=True):
        for f in folders:
            line = ax.plot(WEIGHTS, [test[f][f"{method} {w:g}"] for w in WEIGHTS], marker=".", label=f)[0]
            ax.axhline(test[f]["bm25"], color=line.get_color(), linestyle=":", linewidth=1)
        ax.plot(
            WEIGHTS, [dev[f"{method} {w:g}"] for w in WEIGHTS], color="black", marker="o", label="dev (mean)"
        )
        ax.set_title(f"{method} (dotted: BM25 alone)")
        ax.set_xlabel("dense weight")
    axes[0].set_ylabel("nDCG@10")
    axes[1].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(RESULTS / "fusion.png", dpi=120)
    print((RESULTS / "fusion.md").read_text())


if __name__ == "__main__":
    main()
