"""Questions a query generator writes for the unlabeled text, as distillation pairs (release 0.6).

    python benchmarks/generated_pairs.py runs/distill-data \
        --dev runs/squad-dev500 runs/pubmedqa-dev runs/extra-dev

Writes `<data>/pairs-generated/`: the files of `<data>/pairs/` (benchmarks/distill_data.py) and
`generated.jsonl.gz`. For PASSAGES paragraphs of `../shared/data/text` (Wikipedia paragraphs and
WikiText-2 lines, a fixed sample), SmolLM2-135M-Instruct writes a query each with the synthetic
stage's prompt (ragkit/querygen); a query is kept only if it is usable and BM25 over every such
paragraph ranks its own in the top ROUND_TRIP_K (the synthetic stage's round trip). Paragraphs the
dev splits (`--dev`) hold are left out. The distill stage mines each kept query's candidates as it
does the other sources'. Queries are cached per passage (under `$RAGKIT_HOME/synthetic`), so a killed
run writes only the missing ones.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import shutil
from pathlib import Path

from distill_data import MAX_WORDS, SEED, cut, wikipedia_paragraphs, wikitext_lines

from ragkit.adapt.synthetic import round_trip
from ragkit.io import read_json_lines
from ragkit.querygen import GenerationSettings, generate_queries, usable_query

PASSAGES = 2000
ROUND_TRIP_K = 10
# Generated queries read like web searches (the prompt's examples are MS MARCO's): E5's instruction for those.
INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"


def paragraphs() -> list[str]:
    """Every paragraph a query can be written for (WikiText-2 lines of 40 words or more), cut as
    texts.jsonl cuts them."""
    return list(dict.fromkeys(cut(t) for t in wikipedia_paragraphs() + wikitext_lines(min_words=40)))


def dev_texts(dev: list[Path]) -> set[str]:
    """The passages and queries of the BEIR folders `dev`, cut alike: none of them is written for."""
    found: set[str] = set()
    for folder in dev:
        for name in ("corpus.jsonl.gz", "queries.jsonl"):
            if (folder / name).is_file():
                found |= {cut(row["text"]) for _, row in read_json_lines(folder / name)}
    return found


def folder(data: Path, dev: list[Path]) -> Path:
    """`<data>/pairs-generated`, written if it is missing, with no paragraph of the `dev` splits."""
    out = data / "pairs-generated"
    if (out / "generated.jsonl.gz").is_file():
        return out
    held = dev_texts(dev)
    every = [p for p in paragraphs() if p not in held]
    sample = sorted(random.Random(SEED).sample(range(len(every)), min(PASSAGES, len(every))))
    settings = GenerationSettings.native("cpu")
    queries = generate_queries([every[i] for i in sample], settings)
    usable = [(q, i) for q, i in zip(queries, sample, strict=True) if usable_query(q)]
    kept_mask = round_trip([q for q, _ in usable], [i for _, i in usable], every, ROUND_TRIP_K)
    rows = [
        {"query": q, "positive": every[i], "negative": [], "instruction": INSTRUCTION}
        for (q, i), ok in zip(usable, kept_mask, strict=True)
        if ok
    ]
    partial = data / "pairs-generated.partial"
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(data / "pairs", partial)
    with gzip.open(partial / "generated.jsonl.gz", "wt", encoding="utf-8") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    partial.rename(out)
    print(
        f"{out}: {len(rows)} generated pairs kept of {len(queries)} written "
        f"({len(usable)} usable; {len(every)} paragraphs of at most {MAX_WORDS} words)"
    )
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="benchmarks/distill_data.py's output folder")
    parser.add_argument("--dev", type=Path, nargs="+", required=True, help="BEIR folders to keep out")
    args = parser.parse_args()
    folder(args.data, args.dev)
