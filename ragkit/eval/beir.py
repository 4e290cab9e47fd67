"""Read a local BEIR folder: corpus.jsonl[.gz], queries.jsonl[.gz], qrels/<split>.tsv.

Every problem is reported with the file and line it comes from, because a retrieval score computed
over silently dropped rows is a wrong number that looks right.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ragkit.errors import RagkitError
from ragkit.io import open_text, read_json_lines


@dataclass
class BeirSplit:
    """One split of a BEIR folder: corpus, judged queries and their qrels."""

    name: str  # the folder's name
    split: str
    corpus: list[dict[str, str]]  # {"id", "title", "text"}, in file order
    queries: dict[str, str]  # judged queries only, in file order
    qrels: dict[str, dict[str, int]]  # query id -> doc id -> grade (0 = judged non-relevant)


def is_beir_folder(path: Path) -> bool:
    """Whether `path` looks like a BEIR folder (a qrels/ folder inside)."""
    return path.is_dir() and (path / "qrels").is_dir()


def splits(folder: Path) -> list[str]:
    """The qrels splits a BEIR folder has (test, dev, train ...)."""
    return sorted(p.name.removesuffix(".gz").removesuffix(".tsv") for p in (folder / "qrels").glob("*.tsv*"))


def read_beir(folder: str | Path, split: str | None = None) -> BeirSplit:
    """One split of a BEIR folder; `split` defaults to "test", or the only split there is."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise RagkitError(f"BEIR folder {folder} does not exist")
    available = splits(folder) if (folder / "qrels").is_dir() else []
    if not available:
        raise RagkitError(f"{folder} has no qrels/<split>.tsv: a BEIR folder needs relevance judgments")
    if split is None:
        split = "test" if "test" in available or len(available) != 1 else available[0]
    if split not in available:
        raise RagkitError(f"{folder} has no qrels/{split}.tsv; its splits are {', '.join(available)}")

    corpus_file, queries_file = _find(folder, "corpus"), _find(folder, "queries")
    corpus, seen = [], set()
    for line_no, record in read_json_lines(corpus_file):
        doc_id, text = (
            _field(record, "_id", corpus_file, line_no),
            _field(record, "text", corpus_file, line_no),
        )
        if doc_id in seen:
            raise RagkitError(f"{corpus_file}:{line_no}: duplicate document id {doc_id!r}")
        seen.add(doc_id)
        corpus.append({"id": doc_id, "title": str(record.get("title") or ""), "text": text})
    all_queries = {
        _field(r, "_id", queries_file, n): _field(r, "text", queries_file, n)
        for n, r in read_json_lines(queries_file)
    }
    qrels_file = folder / "qrels" / f"{split}.tsv"
    if not qrels_file.is_file():
        qrels_file = qrels_file.with_name(f"{split}.tsv.gz")
    qrels = _read_qrels(qrels_file, all_queries.keys(), seen)
    queries = {qid: text for qid, text in all_queries.items() if qid in qrels}
    return BeirSplit(folder.name, split, corpus, queries, qrels)


def _find(folder: Path, stem: str) -> Path:
    for name in (f"{stem}.jsonl", f"{stem}.jsonl.gz"):
        if (folder / name).is_file():
            return folder / name
    raise RagkitError(f"{folder} has no {stem}.jsonl or {stem}.jsonl.gz")


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    try:
        with open_text(path) as f:
            for line_no, line in enumerate(f, 1):
                if line.strip():
                    yield line_no, line
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise RagkitError(f"{path}: cannot read it ({e})") from None


def _field(record: dict, name: str, path: Path, line_no: int) -> str:
    value = record.get(name)
    if value is None:
        raise RagkitError(f"{path}:{line_no}: no {name!r} field")
    return str(value)


def _read_qrels(path: Path, query_ids, doc_ids: set[str]) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    for line_no, line in _lines(path):
        row = line.rstrip("\r\n").split("\t")
        if line_no == 1 and row[0] == "query-id":
            continue
        if len(row) == 4:  # TREC style: query-id, iteration, corpus-id, score
            row = [row[0], row[2], row[3]]
        if len(row) != 3:
            raise RagkitError(
                f"{path}:{line_no}: expected 3 tab-separated fields "
                f"(query-id, corpus-id, score), got {len(row)}"
            )
        qid, doc_id, score = row
        try:
            grade = int(float(score))
        except ValueError as e:
            raise RagkitError(f"{path}:{line_no}: score {score!r} is not a number") from e
        if qid not in query_ids:
            raise RagkitError(f"{path}:{line_no}: query id {qid!r} is not in queries.jsonl")
        if doc_id not in doc_ids:
            raise RagkitError(f"{path}:{line_no}: document id {doc_id!r} is not in the corpus")
        qrels.setdefault(qid, {})[doc_id] = grade
    if not qrels:
        raise RagkitError(f"{path} has no judgments")
    return qrels
