"""LLM2Vec's ablation at small scale: SmolLM2-135M variants and two references on six real BEIR folders.

    python benchmarks/ablation.py                                 # every variant whose weights exist
    python benchmarks/ablation.py --variants bm25 bi --folders cranfield cisi
    python benchmarks/ablation.py --runs runs/                    # where `ragkit adapt` wrote the encoders
    python benchmarks/ablation.py --folders sts-b sick-r          # STS only (Spearman of cosines)
    python benchmarks/ablation.py --report                        # rewrite the report, score nothing
    python benchmarks/ablation.py --variants "release 0.3 + distilled from all-MiniLM-L6-v2, step 250"

Adapted variants are `ragkit adapt` outputs under --runs (smollm2-mntp, smollm2-mntp-simcse; a
missing one is skipped and named) and, for bi + MNTP + supervised, the built-in encoder
llm2vec-smollm2-135m exactly as it ships (fp16 adapters). Scores accumulate in
benchmarks/results/ablation.json (one cell per variant and folder), from which ablation.md and
ablation.png are rewritten after every cell. Corpus vectors are cached by `ragkit eval`'s cache, so
an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from pathlib import Path

from distill_dev import BUILTIN_ADAPTERS, MODEL, RELEASE_03_ADAPTERS, snapshots, stage_folder

from ragkit.eval import DenseSearch, TaskScore, evaluate, load_task
from ragkit.eval.bm25 import BM25Search
from ragkit.eval.models import load_eval_model
from ragkit.eval.report import plot_comparison
from ragkit.eval.sts import sts_spearman

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results"
FOLDERS = ["cranfield", "cisi", "scifact", "nfcorpus-processed", "msmarco-subset", "dbpedia-subset"]
STS = {"sts-b": "sts/STSBenchmark/sts-test.csv", "sick-r": "sts/SICK/SICK_test_annotated.txt"}
RELEASE_02 = "bi + MNTP + supervised, release 0.2 (SQuAD + SciFact + SNLI)"
RELEASE_03 = "bi + MNTP + supervised, release 0.3 (+ a second round)"
RELEASE_04 = "bi + MNTP + supervised + distillation, release 0.4 (step 200)"
SHIPPED = "bi + MNTP + supervised + distillation, release 0.5 (shipped)"
DISTILLED = "release 0.3 + distilled from all-MiniLM-L6-v2, step {step}"
SHIPPED_STEP = 850  # the distillation snapshot release 0.5 packages (chosen on the dev splits)
RELEASE_04_STEP = 200

TRAINING = """## How the adapted variants were trained

On 2 CPU cores, with the data in ../shared/data (never a split scored here):

```bash
ragkit adapt --model smollm2-135m --stages mntp --preset cpu-small \\
  --mntp-data ../shared/data/text --out runs/smollm2-mntp
ragkit adapt --model runs/smollm2-mntp --stages simcse --preset cpu-small \\
  --simcse-data ../shared/data/text/wiki1m_for_simcse.head11913.txt --out runs/smollm2-mntp-simcse
python benchmarks/supervised_data.py runs/supervised-data --dev runs/squad-dev500 --dev-queries 500 \\
  --pubmedqa-dev runs/pubmedqa-dev   # SQuAD, SciFact train, SNLI; the dev splits
ragkit adapt --model runs/smollm2-mntp --stages supervised --preset cpu-small \\
  --config benchmarks/configs/smollm2-supervised-squad.toml \\
  --supervised-data runs/supervised-data --out runs/smollm2-mntp-squad
ragkit adapt --model llm2vec-smollm2-135m --stages supervised --preset cpu-small \\
  --config benchmarks/configs/smollm2-supervised-squad2.toml \\
  --supervised-data runs/supervised-data --out runs/smollm2-squad2   # on top of release 0.2
python benchmarks/package_encoder.py <1-mntp> <2-supervised> runs/smollm2-squad2 \\
  --base smollm2-135m --out ragkit/models/llm2vec-smollm2-135m      # release 0.3
python benchmarks/unpack_encoder.py runs/release-0.3/adapters --adapters 3   # release 0.3, copied out
ragkit adapt --model runs/release-0.3/adapters/3-supervised --stages distill --preset cpu-small \\
  --config benchmarks/configs/smollm2-distill.toml \\
  --supervised-data runs/supervised-data --out runs/smollm2-distill  # on top of release 0.3
python benchmarks/distill_dev.py runs/smollm2-distill             # choose a snapshot on the dev splits
python benchmarks/package_encoder.py runs/release-0.3/adapters/*-* \\
  runs/smollm2-distill/training/snapshots/1-distill/step-000850 \\
  --base smollm2-135m --out ragkit/models/llm2vec-smollm2-135m      # release 0.5 (0.4: step-000200)
```

(MNTP and SimCSE ran in fp32; `cpu-small` now uses bf16 autocast where the CPU has it: `autocast =
"fp32"` in a stage's TOML table repeats them exactly.)

"release 0.2" is 90 supervised steps of 32 drawn from 85,404 SQuAD train pairs (same-article hard
negatives), 919 SciFact train claims and 1,282 SNLI triplets on top of MNTP, chosen over the first
release on a held-out SQuAD dev split (nDCG@10 0.709 vs 0.657; BM25 0.864). "release 0.3" adds a
second round on top of it: 80 steps of 32 of the same pairs with a new seed, LoRA on the top 15
layers, bf16 (`adapters/3-supervised`), chosen on the same dev split (0.721 vs 0.709); it was scored
here from the unpacked run (cosine 1.000000 to the packaged fp16 adapters). "release 0.4" is release
0.3 after 200 steps of distillation from all-MiniLM-L6-v2 (the `4-distill` adapter: LoRA on the top
15 layers, batch 16 queries, each with its positive and 3 passages mined by the teacher and BM25, KL
between the student's and the teacher's softmax over the batch's 64 candidates at scale 20, lr 1e-4,
bf16; queries from the supervised pairs, passages from them and gensim's Wikipedia paragraphs),
chosen as the best of the snapshots scored so far (steps 50-200) on each dev split (SQuAD dev 0.720,
release 0.3 0.702; PubMedQA 0.876 vs 0.777; generic instruction;
benchmarks/results/distill_dev.json); scored here from the unpacked snapshot (cosine 0.99995 to its
packaged fp16 adapters). "release 0.5", the shipped encoder, is the same run's step 850 of 1,000,
the best mean of the two dev splits over every snapshot (SQuAD dev 0.762, PubMedQA 0.939; step 1000:
0.759 and 0.939); scored here from the unpacked snapshot (cosine 0.999988 to the packaged fp16
adapters). Step 1000, the end of the run, is a row of its own.
The first release ("release 0.1") saw only the SciFact and SNLI pairs, 100 steps of 32: SciFact is
in-domain for it, which is where it stays ahead.

SimCSE (`--preset cpu-small`): 200 steps of 64 Wikipedia sentences (up to 64 tokens), each read
twice with attention dropout 0.3, in-batch negatives, scale 20, lr 3e-5; LoRA r 16 on the merged
MNTP weights; loss 1.18 -> 0.54 (mean of the first and last 10 steps). The shipped encoder skips it,
as the paper's supervised recipe does. MNTP and supervised settings, losses and times:
ragkit/models/llm2vec-smollm2-135m/README.md.
"""


def variants(runs: Path, max_doc_tokens: int) -> dict[str, dict]:
    """Name -> how to load it; `path` (when set) must exist for the variant to run."""

    def dense(name: str, **options) -> dict:
        return {"load": lambda: DenseSearch(load_eval_model(name, **options), max_doc_tokens=max_doc_tokens)}

    def adapted(directory: str) -> dict:
        return {**dense(str(runs / directory)), "path": runs / directory}

    def distilled(adapter: Path) -> dict:
        return {**dense(MODEL, adapters=[*RELEASE_03_ADAPTERS, str(adapter)]), "path": adapter}

    stage = stage_folder(runs / "smollm2-distill")
    kept = snapshots(stage)

    return {
        "bm25": {"load": BM25Search},
        "all-MiniLM-L6-v2": dense("all-minilm-l6-v2"),
        "causal + mean": dense(MODEL, bidirectional=False, pooling="mean"),
        "causal + last token": dense(MODEL, bidirectional=False, pooling="last_token"),
        "bi": dense(MODEL),
        "bi + MNTP": adapted("smollm2-mntp"),
        "bi + MNTP + SimCSE": adapted("smollm2-mntp-simcse"),
        "bi + MNTP + supervised, release 0.1 (SciFact + SNLI)": adapted("smollm2-mntp-supervised"),
        # The built-in encoder's first two adapters: MNTP, then supervised on SQuAD + SciFact + SNLI.
        RELEASE_02: dense(
            MODEL, adapters=[str(BUILTIN_ADAPTERS / "1-mntp"), str(BUILTIN_ADAPTERS / "2-supervised")]
        ),
        # Release 0.2 + a second supervised round (benchmarks/configs/smollm2-supervised-squad2.toml:
        # 80 more steps of 32, LoRA on the top 15 layers): the built-in's first three adapters.
        RELEASE_03: dense(MODEL, adapters=RELEASE_03_ADAPTERS),
        # Release 0.4: release 0.3 + step RELEASE_04_STEP of the same distillation run.
        RELEASE_04: distilled(
            kept.get(RELEASE_04_STEP, stage / "snapshots" / "1-distill" / f"step-{RELEASE_04_STEP:06d}")
        ),
        # The shipped encoder: release 0.3 + step SHIPPED_STEP of the distillation (fp16 adapters).
        # Its row and release 0.4's hold their unpacked snapshots' scores (see TRAINING).
        SHIPPED: dense("llm2vec-smollm2-135m"),
        # Each other snapshot the distillation run kept (benchmarks/configs/smollm2-distill.toml), a LoRA
        # adapter over release 0.3; the one to ship is chosen on the dev splits
        # (benchmarks/distill_dev.py), never here.
        **{
            DISTILLED.format(step=step): distilled(adapter)
            for step, adapter in sorted(kept.items())
            if step not in (RELEASE_04_STEP, SHIPPED_STEP)
        },
    }


def write_report(cells: dict, settings: dict) -> None:
    scored = list(dict.fromkeys(k.rsplit("|", 1)[0] for k in cells))
    # The table's order, then what it no longer lists (a distillation snapshot whose run is gone).
    names = [v for v in settings["variants"] if v in scored] + [
        v for v in scored if v not in settings["variants"]
    ]
    folders = [f for f in FOLDERS if any(k.endswith(f"|{f}") for k in cells)]
    rows = [
        TaskScore(v, f, "test", c["scores"], c["queries"], c["documents"], c["seconds"])
        for v in names
        for f in folders
        if (c := cells.get(f"{v}|{f}"))
    ]
    lines = [
        "# LLM2Vec ablation, SmolLM2-135M on six BEIR folders",
        "",
        f"Produced by `python benchmarks/ablation.py` ({settings['command']}); documents truncated to "
        f"{settings['max_doc_tokens']} tokens for the encoders (BM25 reads them whole); corpora larger than "
        f"{settings['max_docs']} documents "
        "subsampled keeping every judged document (marked *; such scores are higher than on the full "
        "corpus and compare systems with each other only). Queries carry the MTEB task instruction "
        "(LLM2Vec's format) where the folder copies an MTEB task, a generic one otherwise.",
        "",
    ]
    lines += [TRAINING]
    for metric, title in (("ndcg_at_10", "nDCG@10"), ("recall_at_100", "Recall@100")):
        lines += [f"## {title}", "", "| variant | " + " | ".join(folders) + " | mean |"]
        lines.append("|---" * (len(folders) + 2) + "|")
        for v in names:
            values = [cells.get(f"{v}|{f}", {}).get("scores", {}).get(metric) for f in folders]
            mean = sum(values) / len(values) if all(x is not None for x in values) else None
            shown = ["–" if x is None else f"{x:.3f}" for x in [*values, mean]]
            lines.append(f"| {v} | " + " | ".join(shown) + " |")
        lines.append("")
    docs = {f: cells[k]["documents"] for k in cells for f in folders if k.endswith(f"|{f}")}
    flagged = {f for k in cells for f in folders if k.endswith(f"|{f}") and cells[k]["subsample"]}
    lines.append(
        "Documents per folder: " + ", ".join(f"{f} {docs[f]}{'*' if f in flagged else ''}" for f in folders)
    )
    lines.append("")
    sts = [f for f in STS if any(k.endswith(f"|{f}") for k in cells)]
    if sts:
        lines += [
            "## STS (Spearman x 100 of cosine similarity)",
            "",
            "Both sentences carry LLM2Vec's STS instruction (`Retrieve semantically similar text: `) "
            "for the SmolLM2 variants; all-MiniLM-L6-v2 takes none.",
            "",
        ]
        lines += ["| variant | " + " | ".join(sts) + " |", "|---" * (len(sts) + 1) + "|"]
        for v in names:
            values = [cells.get(f"{v}|{f}", {}).get("spearman") for f in sts]
            if any(x is not None for x in values):
                lines.append(
                    f"| {v} | " + " | ".join("–" if x is None else f"{100 * x:.1f}" for x in values) + " |"
                )
        lines.append("")
    (RESULTS / "ablation.md").write_text("\n".join(lines) + "\n")
    if rows:
        plot_comparison(rows, RESULTS / "ablation.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="*", help="default: all")
    parser.add_argument(
        "--folders", nargs="*", default=[*FOLDERS, *STS], help="BEIR folders and/or sts-b, sick-r"
    )
    parser.add_argument("--runs", type=Path, default=Path("runs"))
    parser.add_argument("--max-docs", type=int, default=1500)
    parser.add_argument("--max-doc-tokens", type=int, default=128)
    parser.add_argument(
        "--report", action="store_true", help="only rewrite ablation.md/.png from ablation.json"
    )
    args = parser.parse_args()

    table = variants(args.runs, args.max_doc_tokens)
    chosen = args.variants or list(table)
    unknown = set(chosen) - set(table)
    if unknown:
        raise SystemExit(f"unknown variants {sorted(unknown)}: choose from {list(table)}")
    store = RESULTS / "ablation.json"
    settings = {
        "variants": list(table),
        "max_docs": args.max_docs,
        "max_doc_tokens": args.max_doc_tokens,
        "command": f"--max-docs {args.max_docs} --max-doc-tokens {args.max_doc_tokens}",
    }
    if args.report:
        if not store.is_file():
            raise SystemExit(f"no scores yet in {store}: run without --report first")
        write_report(json.loads(store.read_text()), settings)
        chosen = []
    for name in chosen:
        spec = table[name]
        if "path" in spec and not spec["path"].exists():
            print(f"skip {name}: {spec['path']} not found (train it with ragkit adapt)")
            continue
        system = spec["load"]()
        system.label = name
        for folder in args.folders:
            start = time.perf_counter()
            if folder in STS:
                if not hasattr(system, "model"):  # BM25 has no vectors to compare
                    continue
                cell = {"spearman": sts_spearman(system.model, DATA / STS[folder])}
            else:
                (row,) = evaluate([system], [load_task(DATA / folder)], output=None, max_docs=args.max_docs)
                cell = {
                    "scores": row.scores,
                    "queries": row.queries,
                    "documents": row.documents,
                    "subsample": row.subsample is not None,
                }
            cell["seconds"] = round(time.perf_counter() - start, 1)
            # Read the file again: another run (another variant) may have added cells meanwhile.
            cells = json.loads(store.read_text()) if store.is_file() else {}
            cells[f"{name}|{folder}"] = cell
            store.write_text(json.dumps(cells, indent=1) + "\n")
            write_report(cells, settings)
        del system
        gc.collect()
    print((RESULTS / "ablation.md").read_text())


if __name__ == "__main__":
    main()
