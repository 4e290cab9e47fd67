"""Recompute `ragkit eval` scores with pytrec_eval, independently of ragkit and mteb's scoring code.

    ragkit eval --bm25 --task ../shared/data/scifact --save-predictions --output /tmp/ev
    python benchmarks/check_eval.py /tmp/ev ../shared/data/scifact

Reads the qrels TSV and the saved rankings directly and prints ragkit's numbers next to
pytrec_eval's (nDCG@10, MRR@10, Recall@100, MAP@100, means over the judged queries).
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytrec_eval


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    with path.open() as f:
        for row in csv.reader(f, delimiter="\t"):
            if row and row[0] != "query-id":
                qrels.setdefault(row[0], {})[row[1]] = int(row[2])
    return qrels


def pytrec_scores(qrels: dict, run: dict) -> dict[str, float]:
    run = {q: run.get(q, {}) for q in qrels}
    top10 = {q: dict(sorted(d.items(), key=lambda kv: -kv[1])[:10]) for q, d in run.items()}
    full = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.100", "map_cut.100"}).evaluate(run)
    rr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(top10)

    def mean(per_query: dict, key: str) -> float:
        return float(np.mean([per_query.get(q, {}).get(key, 0.0) for q in qrels]))

    return {
        "ndcg_at_10": mean(full, "ndcg_cut_10"),
        "mrr_at_10": mean(rr, "recip_rank"),
        "recall_at_100": mean(full, "recall_100"),
        "map_at_100": mean(full, "map_cut_100"),
    }


def main(results: str, *folders: str) -> None:
    by_name = {Path(f).resolve().name: Path(f) for f in folders}
    summary = json.loads((Path(results) / "summary.json").read_text())
    rows = [r for r in summary if r["predictions_file"] and r["task"] in by_name]
    width = (
        max([len("system"), *(len(r["system"]) for r in rows)]) + 2
    )  # a long name never runs into the next column
    print(f"{'task':<16}{'system':<{width}}{'metric':<15}{'ragkit':>10}{'pytrec_eval':>13}{'diff':>10}")
    for row in rows:
        qrels = read_qrels(by_name[row["task"]] / "qrels" / f"{row['split']}.tsv")
        predictions = json.loads(Path(row["predictions_file"]).read_text())
        run = predictions["default"][row["split"]]
        for metric, value in pytrec_scores(qrels, run).items():
            ours = row["scores"][metric]
            name = f"{row['task']:<16}{row['system']:<{width}}{metric:<15}"
            print(f"{name}{ours:>10.5f}{value:>13.5f}{ours - value:>10.1e}")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(*sys.argv[1:])
