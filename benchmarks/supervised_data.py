"""Public (query, positive, hard negative) rows for `ragkit adapt --stages supervised`, from ../shared/data.

    python benchmarks/supervised_data.py runs/supervised-data [--dev runs/squad-dev500 --dev-queries 500] \
        [--pubmedqa-dev runs/pubmedqa-dev]
    ragkit adapt --model runs/smollm2-mntp --stages supervised --supervised-data runs/supervised-data ...

- SciFact train qrels (never the test split the ablation scores): claim -> cited abstract, with the
  best BM25-ranked abstract that is not cited as the hard negative.
- SNLI subsets: written as they are; ragkit turns them into (premise, entailed, contradicted).
- STS-B train pairs scored 4 or more: in-batch negatives only.
- SQuAD v1.1 train questions -> paragraph, with a same-article paragraph as the hard negative, written
  as squad.jsonl.gz so that it gets LLM2Vec's E5 instruction for SQuAD. Its last DEV_ROWS rows (the last
  articles, alphabetically) are held out as a BEIR folder (`--dev`): the dev split that chooses training
  steps and settings, since every shared BEIR folder is a split we report. `--dev-queries 500` keeps
  its first 500 questions (over all 456 paragraphs): the dev split every benchmark here reads.
- PubMedQA's 500 labelled questions -> their abstracts are never trained on: `--pubmedqa-dev` writes
  them as a second dev folder, biomedical and out of SQuAD's domain (benchmarks/fusion.py chooses the
  fusion weight on both).
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
from pathlib import Path

import Stemmer

from ragkit.eval.beir import read_beir
from ragkit.eval.sts import STS_INSTRUCTION, read_sts
from ragkit.eval.tasks import mteb_instruction
from ragkit.retrieval.lexical import import_bm25s

bm25s = import_bm25s()  # with JAX hidden: on a GPU machine it would take most of the GPU

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DEV_ROWS = 2000


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


def squad_rows() -> tuple[list[dict], list[dict]]:
    """(train, dev): SQuAD rows in article order, the last DEV_ROWS held out."""
    with gzip.open(DATA / "train" / "squad_v1.1_train.jsonl.gz", "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    dev = rows[-DEV_ROWS:]
    dev_paragraphs = {r["positive"] for r in dev}
    train = [r for r in rows[:-DEV_ROWS] if r["positive"] not in dev_paragraphs]
    return train, dev


def write_beir(folder: Path, rows: list[dict], queries: int | None = None) -> None:
    """Dev rows as a BEIR folder: every distinct paragraph is a document, each question (or the first
    `queries`) a query."""
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    paragraphs = list(dict.fromkeys(r["positive"] for r in rows))
    doc_ids = {p: f"p{i}" for i, p in enumerate(paragraphs)}
    with gzip.open(folder / "corpus.jsonl.gz", "wt", encoding="utf-8") as f:
        f.writelines(json.dumps({"_id": doc_ids[p], "title": "", "text": p}) + "\n" for p in paragraphs)
    rows = rows[:queries]
    write_jsonl(folder / "queries.jsonl", [{"_id": f"q{i}", "text": r["query"]} for i, r in enumerate(rows)])
    qrels = "".join(f"q{i}\t{doc_ids[r['positive']]}\t1\n" for i, r in enumerate(rows))
    (folder / "qrels" / "dev.tsv").write_text("query-id\tcorpus-id\tscore\n" + qrels)
    print(f"{folder}: {len(paragraphs)} documents, {len(rows)} queries (dev split)")


def pubmedqa_rows() -> list[dict]:
    with gzip.open(DATA / "train" / "pubmedqa_pqal_nontest.jsonl.gz", "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def main(
    out: str, dev: str | None = None, pubmedqa_dev: str | None = None, dev_queries: int | None = None
) -> None:
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    train, dev_rows = squad_rows()
    with gzip.open(folder / "squad.jsonl.gz", "wt", encoding="utf-8") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in train)
    print(f"{folder / 'squad.jsonl.gz'}: {len(train)} rows")
    if dev:
        write_beir(Path(dev), dev_rows, dev_queries)
    if pubmedqa_dev:
        write_beir(Path(pubmedqa_dev), pubmedqa_rows())
    write_jsonl(folder / "scifact_train.jsonl", scifact_rows())
    write_jsonl(folder / "stsb_train.jsonl", stsb_rows())
    for path in sorted((DATA / "nli" / "snli_1.0_subset").glob("*.jsonl")):
        shutil.copyfile(path, folder / path.name)
        print(f"{folder / path.name}: copied")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="folder for the training files")
    parser.add_argument("--dev", help="BEIR folder for the held-out SQuAD dev split")
    parser.add_argument(
        "--dev-queries", type=int, help="keep the dev split's first N questions (500 for squad-dev500)"
    )
    parser.add_argument("--pubmedqa-dev", help="BEIR folder for PubMedQA's questions (a second dev split)")
    args = parser.parse_args()
    main(args.out, args.dev, args.pubmedqa_dev, args.dev_queries)
