"""The one sentence splitter (ragkit/retrieval/sentences.py) against the two it replaced.

    python benchmarks/sentence_splitter.py

Calibration: the 200 pseudo-queries `pseudo_queries` draws from each of the six folders' documents,
with the splitter calibration had (any . ! ? before whitespace, and line breaks) and with the one
splitter. Written queries, the default, use only the sources, so the same sources mean the same
calibration. SimCSE: the distinct training sentences of pydoc and ../shared/data/text with the splitter
adapt had (a capital or digit after the stop) and with the one splitter.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from ragkit.adapt.data import read_texts, training_sentences
from ragkit.corpus import document_text
from ragkit.index import calibration
from ragkit.io import read_json_lines

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results"
FOLDERS = ["scifact", "nfcorpus-processed", "cisi", "cranfield", "dbpedia-subset", "msmarco-subset"]
CALIBRATION_BEFORE = re.compile(r"(?<=[.!?])\s+|\n+")
ADAPT_BEFORE = re.compile(
    r"(?<!\bDr\.)(?<!\bMr\.)(?<!\bMs\.)(?<!\bSt\.)(?<!\bMrs\.)(?<!\bvs\.)(?<!\bNo\.)"
    r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])"
)


def queries_with(split: Callable[[str], list[str]], texts: list[str]) -> list[calibration.PseudoQuery]:
    original = calibration.split_sentences
    calibration.split_sentences = split
    try:
        return calibration.pseudo_queries(texts)
    finally:
        calibration.split_sentences = original


def adapt_before(text: str) -> list[str]:
    sentences = (s.strip() for s in ADAPT_BEFORE.split(" ".join(text.split())))
    return [s for s in sentences if len(s.split()) >= 3]


def main() -> None:
    lines = [
        "# The one sentence splitter against the two it replaced (`python benchmarks/sentence_splitter.py`)",
        "",
        "| calibration, 200 pseudo-queries | same sources | same inverse-cloze queries |",
        "|---|---|---|",
    ]
    for folder in FOLDERS:
        rows = read_json_lines(DATA / folder / "corpus.jsonl.gz")
        texts = [document_text(r.get("title") or "", r["text"]) for _, r in rows]
        before = queries_with(lambda t: [s for s in CALIBRATION_BEFORE.split(t) if s.strip()], texts)
        after = calibration.pseudo_queries(texts)
        same = sum(a.source == b.source for a, b in zip(before, after, strict=True))
        same_query = sum(
            a.source == b.source and a.query == b.query for a, b in zip(before, after, strict=True)
        )
        lines.append(f"| {folder} | {same} / {len(before)} | {same_query} / {len(before)} |")
    lines += ["", "| SimCSE sentences | before | after | shared (of before) |", "|---|---|---|---|"]
    for source in ["pydoc", str(DATA / "text")]:
        old = {s for text in read_texts(source) for s in adapt_before(text)}
        new = {s for text in read_texts(source) for s in training_sentences(text)}
        name = "pydoc" if source == "pydoc" else "../shared/data/text"
        lines.append(f"| {name} | {len(old)} | {len(new)} | {len(old & new) / len(old):.3f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    (RESULTS / "sentence_splitter.md").write_text(text)


if __name__ == "__main__":
    main()
