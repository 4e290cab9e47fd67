"""Broad data for distillation (release 0.6), with a third dev split held out of it, from ../shared/data.

    python benchmarks/distill_data.py runs/distill-data --dev runs/extra-dev

Writes, under `out`:
- `pairs/`: (query, positive, negatives) rows for the distill stage's queries, at most PAIRS_PER_SOURCE
  a source, so no source dominates the sample of queries a run draws (release 0.5 drew 96% SQuAD):
  SQuAD train (without the rows benchmarks/supervised_data.py holds out as squad-dev500), STS-B train
  (score >= 4), and the seven sets of `train/extra/` less their held-out queries, each with an
  instruction in LLM2Vec's style;
- `texts.jsonl`: texts for the embedding loss, any text at all: at most TEXTS_PER_SOURCE a source, half
  queries and half passages where a source has both, plus the unlabeled Wikipedia paragraphs,
  WikiText-2 and wiki1m lines of `text/`; each cut to MAX_WORDS words, so the teacher embeds what the
  student reads (128 tokens).
`--dev` writes the held-out queries of the seven extra sets as a BEIR folder (DEV_QUERIES distinct
queries a set; the corpus is their positives and negatives plus DISTRACTORS passages of the set's
other rows): a dev split of seven query styles no training file holds (`pairs/` and `texts.jsonl`
leave out its queries and its relevant passages). PubMedQA is left out everywhere: its 500 labelled
questions are the pubmedqa-dev split. SciFact, NFCorpus and the other BEIR folders are never read.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
from pathlib import Path

from supervised_data import DATA, squad_rows

from ragkit.io import read_json_lines

PAIRS_PER_SOURCE = 4000
TEXTS_PER_SOURCE = 10000
MAX_WORDS = 100
DEV_QUERIES = 80
DISTRACTORS = 300
SEED = 45
# Instructions in LLM2Vec's style (E5's for SQuAD come from the file name).
EXTRA = {
    "bioasq_snippets": "Given a biomedical question, retrieve the snippet that answers it",
    "homedepot_search": "Given a product search query, retrieve the product that matches it",
    "medquad": "Given a consumer health question, retrieve the passage that answers it",
    "quora_dup": "Given a question, retrieve questions that are semantically equivalent to it",
    "semeval16_cqa": "Given a question posted on a forum, retrieve the replies that answer it",
    "stackexchange_small": "Given the title of a question posted on a forum, retrieve its body",
    "wikiqa": "Given a question, retrieve the Wikipedia sentence that answers it",
}
STSB_INSTRUCTION = "Retrieve semantically similar text"


def read_gz(path: Path) -> list[dict]:
    return [row for _, row in read_json_lines(path)]


def cut(text: str) -> str:
    return " ".join(text.split()[:MAX_WORDS])


def split_extra(name: str) -> tuple[list[dict], list[dict]]:
    """(train, dev) rows of an extra set: the rows of its last DEV_QUERIES distinct queries are dev,
    and no train row shares a query or a relevant passage with them."""
    rows = read_gz(DATA / "train" / "extra" / name / "pairs.jsonl.gz")
    queries = list(dict.fromkeys(r["query"] for r in rows))
    held = set(queries[-DEV_QUERIES:])
    dev = [r for r in rows if r["query"] in held]
    relevant = {r["positive"] for r in dev}
    train = [r for r in rows if r["query"] not in held and r["positive"] not in relevant]
    return train, dev


def write_dev(folder: Path, splits: dict[str, tuple[list[dict], list[dict]]]) -> None:
    """The extra sets' dev rows as one BEIR folder, each query judged against its set's positives."""
    rng = random.Random(SEED)
    documents: dict[str, str] = {}
    queries: dict[str, str] = {}
    qrels: list[tuple[str, str]] = []

    def doc_id(text: str) -> str:
        return documents.setdefault(text, f"d{len(documents)}")

    for train, dev in splits.values():
        for row in dev:
            qid = queries.setdefault(row["query"], f"q{len(queries)}")
            qrels.append((qid, doc_id(row["positive"])))
            for negative in row.get("negatives") or []:
                doc_id(negative)
        others = list(dict.fromkeys(r["positive"] for r in train))
        for text in rng.sample(others, min(DISTRACTORS, len(others))):
            doc_id(text)
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    with gzip.open(folder / "corpus.jsonl.gz", "wt", encoding="utf-8") as f:
        f.writelines(json.dumps({"_id": i, "title": "", "text": t}) + "\n" for t, i in documents.items())
    (folder / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": i, "text": q}) + "\n" for q, i in queries.items())
    )
    lines = "".join(f"{q}\t{d}\t1\n" for q, d in dict.fromkeys(qrels))
    (folder / "qrels" / "dev.tsv").write_text("query-id\tcorpus-id\tscore\n" + lines)
    print(f"{folder}: {len(documents)} documents, {len(queries)} queries (dev split)")


def pair_rows(rows: list[dict], instruction: str | None, rng: random.Random) -> list[dict]:
    """At most PAIRS_PER_SOURCE rows (a fixed sample), in the distill stage's row format."""
    rows = rng.sample(rows, min(PAIRS_PER_SOURCE, len(rows)))
    out = []
    for r in rows:
        negatives = r.get("negatives") or ([r["negative"]] if r.get("negative") else [])
        row = {"query": r["query"], "positive": r["positive"], "negative": negatives}
        out.append({**row, **({"instruction": instruction} if instruction else {})})
    return out


def text_rows(rows: list[dict], rng: random.Random) -> list[str]:
    """Up to TEXTS_PER_SOURCE distinct texts of a labelled source: half queries, half passages."""
    queries = list(dict.fromkeys(r["query"] for r in rows))
    passages = list(dict.fromkeys(r["positive"] for r in rows))
    half = TEXTS_PER_SOURCE // 2
    taken = rng.sample(queries, min(half, len(queries)))
    taken += rng.sample(passages, min(TEXTS_PER_SOURCE - len(taken), len(passages)))
    return [cut(t) for t in taken]


def wikipedia_paragraphs() -> list[str]:
    with (DATA / "text" / "enwiki_sample_gensim.paragraphs.jsonl").open() as f:
        return [p for line in f for p in json.loads(line)["paragraphs"]]


def wikitext_lines(min_words: int = 8) -> list[str]:
    """WikiText-2's lines of at least `min_words` words, headings left out."""
    with (DATA / "text" / "wikitext-2-raw.wiki.test.raw").open(encoding="utf-8") as f:
        lines = [line.strip() for line in f]
    return [line for line in lines if len(line.split()) >= min_words and not line.startswith("=")]


def unlabeled_texts(rng: random.Random) -> dict[str, list[str]]:
    text = DATA / "text"
    wiki1m = [line.strip() for line in (text / "wiki1m_for_simcse.head11913.txt").open() if line.strip()]
    sources = {"enwiki paragraphs": wikipedia_paragraphs(), "wikitext-2": wikitext_lines(), "wiki1m": wiki1m}
    return {
        name: [cut(t) for t in rng.sample(rows, min(TEXTS_PER_SOURCE, len(rows)))]
        for name, rows in sources.items()
    }


def main(out: Path, dev: Path | None) -> None:
    rng = random.Random(SEED)
    squad_train, squad_dev = squad_rows()
    stsb = read_gz(DATA / "train" / "stsb_train_pos4.jsonl.gz")
    splits = {name: split_extra(name) for name in EXTRA}
    if dev:
        write_dev(dev, splits)
    held_out = {r["query"] for _, d in splits.values() for r in d} | {r["query"] for r in squad_dev}
    held_out |= {r["positive"] for _, d in splits.values() for r in d} | {r["positive"] for r in squad_dev}
    labelled = {"squad": (squad_train, None), "stsb_train": (stsb, STSB_INSTRUCTION)}
    labelled |= {name: (train, EXTRA[name]) for name, (train, _) in splits.items()}
    (out / "pairs").mkdir(parents=True, exist_ok=True)
    texts: dict[str, list[str]] = {}
    for name, (rows, instruction) in labelled.items():
        pairs = pair_rows(rows, instruction, rng)
        with gzip.open(out / "pairs" / f"{name}.jsonl.gz", "wt", encoding="utf-8") as f:
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in pairs)
        texts[name] = text_rows(rows, rng)
    texts |= unlabeled_texts(rng)
    kept = [t for rows in texts.values() for t in rows if t not in held_out]
    kept = list(dict.fromkeys(kept))
    rng.shuffle(kept)
    (out / "texts.jsonl").write_text(
        "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in kept)
    )
    print(
        f"{out / 'pairs'}: "
        + ", ".join(f"{n} {min(PAIRS_PER_SOURCE, len(r))}" for n, (r, _) in labelled.items())
    )
    print(
        f"{out / 'texts.jsonl'}: {len(kept)} texts; " + ", ".join(f"{n} {len(t)}" for n, t in texts.items())
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder for pairs/ and texts.jsonl")
    parser.add_argument("--dev", type=Path, help="BEIR folder for the extra sets' held-out queries")
    args = parser.parse_args()
    main(args.out, args.dev)
