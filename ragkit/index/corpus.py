"""Read a folder of documents: text, markdown, HTML, JSON lines, CSV, PDF, gzip of any, BEIR corpora.

Each file yields `Document`s. A file that cannot be read is skipped and counted, never fatal.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

from ragkit.errors import RagkitError

TEXT_SUFFIXES = {".txt", ".text", ".md", ".markdown", ".rst"}
HTML_SUFFIXES = {".html", ".htm"}
JSON_SUFFIXES = {".jsonl", ".json"}
SUPPORTED = TEXT_SUFFIXES | HTML_SUFFIXES | JSON_SUFFIXES | {".csv", ".pdf"}


@dataclass
class Document:
    doc_id: str
    text: str
    title: str = ""
    metadata: dict = field(default_factory=dict)


@dataclass
class Fields:
    """Which JSON / CSV fields hold the id, title and text. The BEIR corpus layout fits the defaults."""

    text: str = "text"
    title: str = "title"
    id: tuple[str, ...] = ("_id", "id", "doc_id")


@dataclass
class CorpusFile:
    path: Path  # absolute
    relpath: str  # relative to the corpus root, with "/" separators; the key of incremental updates
    content_hash: str


@dataclass
class ReadStats:
    skipped: Counter = field(default_factory=Counter)  # reason -> files
    replaced_decoding: int = 0  # files that were not valid UTF-8, decoded with replacement characters
    empty_documents: int = 0


def check_corpus_path(root: str | Path) -> Path:
    root = Path(root).expanduser()
    if not root.exists():
        raise RagkitError(f"corpus path {root} does not exist")
    return root


def list_files(root: Path) -> list[CorpusFile]:
    """Every file under `root` (a folder, recursively, or one file), sorted; hidden ones excluded."""
    root = check_corpus_path(root)
    paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    base = root.parent if root.is_file() else root
    files = []
    for path in paths:
        rel = path.relative_to(base)
        if any(part.startswith(".") for part in rel.parts):
            continue
        files.append(CorpusFile(path, rel.as_posix(), hashlib.sha256(path.read_bytes()).hexdigest()))
    return files


def inner_suffix(path: Path) -> str:
    """The lowercase suffix under any .gz (".jsonl" for "corpus.jsonl.gz"); "" if there is none."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    return suffixes[-1] if suffixes else ""


def file_format(path: Path) -> str | None:
    """The inner suffix, or None when ragkit cannot read it."""
    suffix = inner_suffix(path)
    return suffix if suffix in SUPPORTED else None


def read_documents(file: CorpusFile, fields: Fields, stats: ReadStats) -> list[Document]:
    """The documents in one file; [] (and a counted reason) when it is skipped."""
    fmt = file_format(file.path)
    if fmt is None:
        stats.skipped["unsupported type"] += 1
        return []
    try:
        raw = file.path.read_bytes()
        if file.path.suffix.lower() == ".gz":
            raw = gzip.decompress(raw)
        if fmt == ".pdf":
            return _pdf(raw, file, stats)
        if b"\x00" in raw[:8192]:
            stats.skipped["binary"] += 1
            return []
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("utf-8", errors="replace")
            stats.replaced_decoding += 1
        docs = _parse(fmt, text, file, fields)
    except (OSError, EOFError, gzip.BadGzipFile, json.JSONDecodeError, csv.Error, ValueError) as e:
        stats.skipped[f"unreadable ({type(e).__name__})"] += 1
        return []
    kept = [d for d in docs if d.text.strip() or d.title.strip()]
    stats.empty_documents += len(docs) - len(kept)
    return kept


def _parse(fmt: str, text: str, file: CorpusFile, fields: Fields) -> list[Document]:
    if fmt in TEXT_SUFFIXES:
        title = _markdown_title(text) if fmt in {".md", ".markdown"} else ""
        return [Document(file.relpath, text, title)]
    if fmt in HTML_SUFFIXES:
        parser = _HTMLText()
        parser.feed(text)
        return [Document(file.relpath, parser.text(), parser.title.strip())]
    if fmt == ".jsonl":
        records = [json.loads(line) for line in text.splitlines() if line.strip()]
    elif fmt == ".json":
        data = json.loads(text)
        records = data if isinstance(data, list) else [data]
    else:  # .csv
        records = list(csv.DictReader(io.StringIO(text)))
    return [_record(r, i, file, fields) for i, r in enumerate(records) if isinstance(r, dict)]


def _record(record: dict, i: int, file: CorpusFile, fields: Fields) -> Document:
    doc_id = next(
        (str(record[k]) for k in fields.id if record.get(k) not in (None, "")), f"{file.relpath}#{i}"
    )
    text = record.get(fields.text)
    if text is None:
        raise ValueError(f"no {fields.text!r} field")
    used = {fields.text, fields.title, *fields.id}
    metadata = {k: v for k, v in record.items() if k not in used and isinstance(v, str | int | float | bool)}
    return Document(doc_id, str(text), str(record.get(fields.title) or ""), metadata)


def _markdown_title(text: str) -> str:
    match = re.search(r"^#\s+(.+)$", text, flags=re.MULTILINE)
    return match.group(1).strip() if match else ""


def _pdf(raw: bytes, file: CorpusFile, stats: ReadStats) -> list[Document]:
    try:
        import pypdf
    except ImportError:
        stats.skipped["PDF (pip install pypdf to read PDFs)"] += 1
        return []
    reader = pypdf.PdfReader(io.BytesIO(raw))
    text = "\n".join(page.extract_text() or "" for page in reader.pages)
    title = str((reader.metadata or {}).get("/Title") or "")
    return [Document(file.relpath, text, title)]


class _HTMLText(HTMLParser):
    """Visible text of an HTML page, one block per line; <title> kept apart."""

    BLOCKS = frozenset({"p", "div", "br", "li", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "section"})
    HIDDEN = frozenset({"script", "style", "noscript", "template"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title = ""
        self.hidden = 0
        self.in_title = False

    def handle_starttag(self, tag, attrs):
        if tag == "title":
            self.in_title = True
        elif tag in self.HIDDEN:
            self.hidden += 1
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag == "title":
            self.in_title = False
        elif tag in self.HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data):
        if self.in_title:
            self.title += data
        elif not self.hidden:
            self.parts.append(data)

    def text(self) -> str:
        lines = (" ".join(line.split()) for line in "".join(self.parts).splitlines())
        return "\n".join(line for line in lines if line)
