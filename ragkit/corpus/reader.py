"""Read a folder of documents: text, markdown, HTML, JSON lines, CSV, PDF, gzip of any, BEIR corpora.

Each file yields `Document`s. A file that cannot be read is skipped and counted, never fatal.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import re
import sys
import zlib
from collections import Counter
from dataclasses import dataclass, field, fields
from html.parser import HTMLParser
from pathlib import Path

from ragkit.corpus.document import Document
from ragkit.errors import RagkitError
from ragkit.io import TEXT_SUFFIXES, displayable_path, inner_suffix, json_lines, json_value
from ragkit.io.records import from_known_fields

HTML_SUFFIXES = {".html", ".htm"}
JSON_SUFFIXES = {".jsonl", ".json"}
SUPPORTED = TEXT_SUFFIXES | HTML_SUFFIXES | JSON_SUFFIXES | {".csv", ".pdf"}


@dataclass
class Fields:
    """Which JSON / CSV fields hold the id, title and text. The BEIR corpus layout fits the defaults."""

    text: str = "text"
    title: str = "title"
    id: tuple[str, ...] = ("_id", "id", "doc_id")

    @classmethod
    def from_json(cls, data: dict) -> Fields:
        """The fields of a manifest's "fields" object (JSON holds the id names as a list)."""
        return from_known_fields(cls, {**data, "id": tuple(data["id"])} if "id" in data else data)


@dataclass
class CorpusFile:
    """A file of a corpus folder and the hash that tells an update whether it changed."""

    path: Path  # absolute
    relpath: str  # relative to the corpus root, with "/" separators; the key of incremental updates
    content_hash: str


@dataclass
class ReadStats:
    """What reading a corpus skipped or repaired, for the build's summary."""

    skipped: Counter = field(default_factory=Counter)  # reason -> files
    replaced_decoding: int = 0  # files that were not valid UTF-8, decoded with replacement characters
    empty_documents: int = 0

    def to_json(self) -> dict:
        """Every count as plain JSON (what a Ray task sends back to the build)."""
        counts = {f.name: getattr(self, f.name) for f in fields(self)}
        return {name: dict(v) if isinstance(v, Counter) else v for name, v in counts.items()}

    def add(self, counts: dict) -> None:
        """Add counts another reader made (`to_json`'s form) to these."""
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Counter):
                value.update(counts.get(f.name, {}))
            else:
                setattr(self, f.name, value + counts.get(f.name, 0))


def check_corpus_path(root: str | Path) -> Path:
    """The corpus path, if it exists (checked before a model is loaded)."""
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
        # A name that is not UTF-8 (bytes from another system) is keyed and shown with \x escapes.
        relpath = displayable_path(rel.as_posix())
        files.append(CorpusFile(path, relpath, hashlib.sha256(path.read_bytes()).hexdigest()))
    return files


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
        raw = _read_bytes(file.path)
        if fmt == ".pdf":
            return _pdf(raw, file, stats)
        if _is_binary(raw):
            stats.skipped["binary"] += 1
            return []
        text, replaced = _decode(raw)
        stats.replaced_decoding += replaced
        docs = _parse(fmt, text, file, fields)
    except RagkitError:  # a bad JSON line
        stats.skipped["unreadable (invalid JSON)"] += 1
        return []
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error, csv.Error, ValueError) as e:
        stats.skipped[f"unreadable ({type(e).__name__})"] += 1
        return []
    kept = [d for d in docs if d.text.strip() or d.title.strip()]
    stats.empty_documents += len(docs) - len(kept)
    return kept


def read_lines(path: str | Path) -> list[str]:
    """The non-blank lines of a text file (gzipped or not), stripped: one text each (`ragkit embed -f`).

    Read as `ragkit index` reads a file: a binary file is refused rather than embedded as garbage.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise RagkitError(f"{path} is not a file")
    try:
        raw = _read_bytes(path)
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise RagkitError(f"{path}: cannot read it ({type(e).__name__}: {e})") from None
    if _is_binary(raw):
        raise RagkitError(f"{path} is a binary file, not text with one text per line")
    text, _ = _decode(raw)
    return [line.strip() for line in text.splitlines() if line.strip()]


def _read_bytes(path: Path) -> bytes:
    raw = path.read_bytes()
    return gzip.decompress(raw) if path.suffix.lower() == ".gz" else raw


def _is_binary(raw: bytes) -> bool:
    return b"\x00" in raw[:8192]


def _decode(raw: bytes) -> tuple[str, bool]:
    """UTF-8 text, and whether invalid bytes had to be replaced."""
    try:
        return raw.decode("utf-8"), False
    except UnicodeDecodeError:
        return raw.decode("utf-8", errors="replace"), True


def _parse(fmt: str, text: str, file: CorpusFile, fields: Fields) -> list[Document]:
    if fmt in TEXT_SUFFIXES:
        title = _markdown_title(text) if fmt in {".md", ".markdown"} else ""
        return [Document(file.relpath, text, title)]
    if fmt in HTML_SUFFIXES:
        parser = _HTMLText()
        parser.feed(text)
        return [Document(file.relpath, parser.text(), parser.title.strip())]
    if fmt == ".jsonl":
        records = [value for _, value in json_lines(text.splitlines(), file.relpath, objects=False)]
    elif fmt == ".json":
        try:
            data = json_value(text)
        except ValueError as e:
            raise RagkitError(f"{file.relpath}: invalid JSON ({getattr(e, 'msg', e)})") from None
        records = data if isinstance(data, list) else [data]
    else:  # .csv, whose cells may be whole documents: past the csv module's 131,072-character default
        csv.field_size_limit(max(csv.field_size_limit(), min(sys.maxsize, 2**31 - 1)))
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
