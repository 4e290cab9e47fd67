"""Which pseudo-queries calibrate an index better: inverse-cloze sentences or questions an LLM writes?

    python benchmarks/calibration_queries.py

ragkit/index/calibration.py chooses each index's default search (dense, BM25 or a fusion) on 200
pseudo-queries made one of two ways: inverse-cloze (a sentence of a chunk, with the rest of the
chunk as its one relevant passage), or generated (SmolLM2-135M-Instruct, InPars' prompt,
ragkit/querygen/, writes a question for each of 200 sampled chunks, and the chunk itself is its
relevant passage; no round-trip filter: BM25 choosing the queries would bias the choice towards
BM25). This measurement chose "generated" as `ragkit index`'s default. Both ways run the same
`calibrate` on the same subsampled corpora and vectors as benchmarks/fusion.py; what each chooses is
then looked up in fusion.json's nDCG@10 of every setting on the real queries, which no calibration
sees. Generations are cached (RAGKIT_HOME/synthetic), so a rerun costs only the encoding.
Writes benchmarks/results/calibration_queries.json and .md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from fusion import DATA, DEV_INSTRUCTION, FOLDERS, RESULTS, calibration_inputs

from ragkit.eval import DenseSearch, load_task
from ragkit.eval.models import load_eval_model
from ragkit.eval.tasks import subsample
from ragkit.index.calibration import calibrate, written_queries

METHODS = ("inverse-cloze", "generated")


def calibrations(
    folder: Path, split: str | None, instruction: str | None, dense: DenseSearch, max_docs: int
) -> dict:
    """Both ways' calibration of one corpus, subsampled and set up as fusion.py's `calibrate_on`."""
    task = load_task(folder, split, instruction)
    subsample(task, max_docs)  # as `evaluate(..., max_docs=...)` cut it in fusion.py
    cut, vectors, embed_queries, embed_documents = calibration_inputs(task, dense)
    out = {}
    for method in METHODS:
        queries = written_queries(cut) if method == "generated" else None
        calibration = calibrate(cut, vectors, embed_queries, embed_documents, queries=queries, method=method)
        out[method] = calibration.to_json() if calibration else None
        print(f"{folder.name} {method}: {calibration.setting if calibration else 'fallback'}", flush=True)
    return out


def write_report(chosen: dict, real: dict) -> None:
    names = [n for n in ["squad-dev500", "pubmedqa-dev", *FOLDERS] if n in chosen]
    lines = [
        "# Calibration pseudo-queries: inverse-cloze sentences vs questions an LLM writes",
        "",
        "`python benchmarks/calibration_queries.py`: the same calibration (ragkit/index/calibration.py) on "
        "200 pseudo-queries per corpus made two ways, inverse-cloze (a sentence of a chunk; the rest of the "
        "chunk is its passage: the default before this measurement) and generated (SmolLM2-135M-Instruct "
        "writes a question for the same chunks, InPars' prompt, no round-trip filter: `ragkit index`'s "
        "default since). Each way's choice is scored on the real "
        "queries with fusion.json's nDCG@10 of that setting (benchmarks/fusion.py: same subsampling, "
        "vectors and encoder). The first two rows are the dev splits.",
        "",
        "| corpus | inverse-cloze: chosen | nDCG@10 | generated: chosen | nDCG@10 | bm25 | best setting |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in names:
        scores = real[name]
        best = max((k for k in scores if k != "calibrated"), key=scores.get)
        cells = []
        for method in METHODS:
            setting = (chosen[name][method] or {}).get("setting", "fallback")
            cells += [setting, f"{scores.get(setting, float('nan')):.3f}"]
        lines.append(f"| {name} | {' | '.join(cells)} | {scores['bm25']:.3f} | {scores[best]:.3f} ({best}) |")
    six = [n for n in FOLDERS if n in chosen]
    for method in METHODS:
        got = [real[n][(chosen[n][method] or {}).get("setting", "bm25")] for n in six]
        gaps = [g - real[n]["bm25"] for g, n in zip(got, six, strict=True)]
        lines.append("")
        bm25 = np.mean([real[n]["bm25"] for n in six])
        lines.append(
            f"- {method}: six-folder mean {np.mean(got):.3f} (BM25 {bm25:.3f}), "
            f"worst folder vs BM25 {min(gaps):+.3f}"
        )
    (RESULTS / "calibration_queries.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dev", type=Path, nargs="+", default=[Path("runs/squad-dev500"), Path("runs/pubmedqa-dev")]
    )
    parser.add_argument("--folders", nargs="*", default=FOLDERS)
    parser.add_argument("--max-docs", type=int, default=1500)
    parser.add_argument("--max-doc-tokens", type=int, default=128)
    args = parser.parse_args()
    fusion = json.loads((RESULTS / "fusion.json").read_text())
    real = {**fusion["dev"], **fusion["folders"]}
    store = RESULTS / "calibration_queries.json"
    chosen = json.loads(store.read_text()) if store.is_file() else {}
    dense = DenseSearch(load_eval_model("llm2vec-smollm2-135m"), max_doc_tokens=args.max_doc_tokens)
    for folder in args.dev:
        instruction = DEV_INSTRUCTION if "squad" in folder.name else None
        chosen[folder.name] = calibrations(folder, "dev", instruction, dense, args.max_docs)
        store.write_text(json.dumps(chosen, indent=1) + "\n")
    for name in args.folders:
        chosen[name] = calibrations(DATA / name, None, None, dense, args.max_docs)
        store.write_text(json.dumps(chosen, indent=1) + "\n")
    write_report(chosen, real)
    print((RESULTS / "calibration_queries.md").read_text())


if __name__ == "__main__":
    main()
