"""Public (query, positive, hard negative) rows for `ragkit adapt --stages supervised`, from ../shared/data.

    python benchmarks/supervised_data.py runs/supervised-data
    ragkit adapt --model runs/smollm2-mntp --stages supervised --supervised-data runs/supervised-data ...

- SciFact train qrels (never the test split the ablation scores): claim -> cited abstract, with the
  best BM25-ranked abstract that is not cited as the hard negative.
- SNLI subsets: written as they are; ragkit turns them into (premise, entailed, contradicted).
- STS-B train pairs scored 4 or more: in-batch negatives only.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import bm25s
import Stemmer

from ragkit.eval.beir import read_beir
from ragkit.eval.sts import STS_INSTRUCTION, read_sts
from ragkit.eval.tasks import mteb_instruction

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    print(f"{path}: {len(rows)} rows")


def scifact_rows() -> list[dict]:
    data = read_beir(DATA / "scifact", "train")
    texts = [f"{d['title']} {d['text']}".strip() for d in data.corpus]
    ids = [d["id"] for d in data.corpus]
    stemmer = Stemmer.Stemmer("english")
    retriever = bm25s.BM25()
    retriever.index(
        bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False), show_progress=False
    )
    queries = list(data.queries)
    tokens = bm25s.tokenize(
        [data.queries[q] for q in queries], stopwords="en", stemmer=stemmer, show_progress=False
    )
    ranked, _ = retriever.retrieve(tokens, k=20, show_progress=False)
    by_id = dict(zip(ids, texts, strict=True))
    instruction = mteb_instruction("scifact")
    rows = []
    for qid, hits in zip(queries, ranked, strict=True):
        cited = {d for d, grade in data.qrels[qid].items() if grade > 0}
        negative = next((ids[i] for i in hits if ids[i] not in cited), None)
        for doc in sorted(cited):
            row = {"query": data.queries[qid], "positive": by_id[doc], "instruction": instruction}
            rows.append({**row, "negative": by_id[negative]} if negative else row)
    return rows


def stsb_rows() -> list[dict]:
    first, second, scores, _ = read_sts(DATA / "sts" / "STSBenchmark" / "sts-train.csv")
    return [
        {"query": a, "positive": b, "instruction": STS_INSTRUCTION}
        for a, b, score in zip(first, second, scores, strict=True)
        if score >= 4.0
    ]


def main(out: str) -> None:
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    write_jsonl(folder / "scifact_train.jsonl", scifact_rows())
    write_jsonl(folder / "stsb_train.jsonl", stsb_rows())
    for path in sorted((DATA / "nli" / "snli_1.0_subset").glob("*.jsonl")):
        shutil.copyfile(path, folder / path.name)
        print(f"{folder / path.name}: copied")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
