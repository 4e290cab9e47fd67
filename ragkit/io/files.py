"""Text files (gzipped or not), JSON lines with line-numbered errors, and Hub ids told from paths."""

from __future__ import annotations

import gzip
import json
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from ragkit.errors import RagkitError

# Plain text, one document per file for `ragkit index`, one passage per line for training data.
TEXT_SUFFIXES = frozenset({".txt", ".text", ".raw", ".md", ".markdown", ".rst"})

_HUB_ID = re.compile(r"[\w.-]+/[\w.-]+")
_HUB_DATASET = re.compile(r"[\w.-]+/[\w.-]+(:[\w.-]+)?")


def inner_suffix(path: str | os.PathLike) -> str:
    """The lowercase suffix under any .gz (".jsonl" for "corpus.jsonl.gz"); "" if there is none."""
    suffixes = [s.lower() for s in Path(path).suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    return suffixes[-1] if suffixes else ""


def open_text(path: str | os.PathLike, errors: str = "strict") -> IO[str]:
    """A UTF-8 text file, gunzipped on the fly when it ends in .gz."""
    path = Path(path)
    if path.suffix.lower() == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", errors=errors)
    return path.open(encoding="utf-8", errors=errors)


def json_lines(lines: Iterable[str], where: str, *, objects: bool = True) -> Iterator[tuple[int, Any]]:
    """(line number, value) for each non-blank line; a bad line is a RagkitError naming `where:line`.

    `objects` requires every value to be a JSON object.
    """
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as e:
            raise RagkitError(f"{where}:{line_no}: invalid JSON ({e.msg})") from None
        if objects and not isinstance(value, dict):
            raise RagkitError(f"{where}:{line_no}: expected a JSON object, got {type(value).__name__}")
        yield line_no, value


def read_json_lines(path: str | os.PathLike) -> Iterator[tuple[int, dict]]:
    """(line number, object) of a .jsonl file, gzipped or not; unreadable files are one-line errors."""
    try:
        with open_text(path) as f:
            yield from json_lines(f, str(path))
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise RagkitError(f"{path}: cannot read it ({e})") from None


def is_hub_id(name: str, *, config: bool = False) -> bool:
    """ "org/name" (with `config`, also "org/name:config") that is not an existing local path."""
    pattern = _HUB_DATASET if config else _HUB_ID
    return pattern.fullmatch(name) is not None and not Path(name).expanduser().exists()
