"""Text files (gzipped or not), JSON lines with line-numbered errors, and Hub ids told from paths."""

from __future__ import annotations

import errno
import gzip
import json
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from ragkit.errors import RagkitError, first_line

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


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number; write null or a string")


def json_value(text: str) -> Any:
    """`json.loads`, strictly JSON: NaN and Infinity (which Python writes and reads, and SQLite's JSON
    functions refuse) are a ValueError, as any other invalid JSON."""
    return json.loads(text, parse_constant=_no_constant)


def json_lines(lines: Iterable[str], where: str, *, objects: bool = True) -> Iterator[tuple[int, Any]]:
    """(line number, value) for each non-blank line; a bad line is a RagkitError naming `where:line`.

    `objects` requires every value to be a JSON object.
    """
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            value = json_value(line)
        except ValueError as e:  # json.JSONDecodeError is one
            raise RagkitError(f"{where}:{line_no}: invalid JSON ({getattr(e, 'msg', e)})") from None
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


_FULL = (errno.ENOSPC, errno.EDQUOT)
_DENIED = (errno.EROFS, errno.EACCES, errno.EPERM)


def write_error(error: BaseException, where: str | os.PathLike, kept: str = "") -> RagkitError | None:
    """A one-line error for a write that failed for want of space or permission (an OSError, or a
    library's error that carries the OS's message), or None for any other failure. `kept` says what
    is left as it was ("the previous index is intact")."""
    code = getattr(error, "errno", None)
    text = str(error)
    tail = f"; {kept}" if kept else ""
    if code in _FULL or "No space left" in text or "StorageFull" in text or "disk is full" in text:
        return RagkitError(f"the disk holding {where} is full; free some space and run again{tail}")
    if code in _DENIED or "Read-only file system" in text or "Permission denied" in text:
        reason = os.strerror(code) if code in _DENIED else first_line(error)
        return RagkitError(f"cannot write to {where} ({reason}); choose a place you can write to{tail}")
    return None


def is_hub_id(name: str, *, config: bool = False) -> bool:
    """ "org/name" (with `config`, also "org/name:config") that is not an existing local path."""
    pattern = _HUB_DATASET if config else _HUB_ID
    return pattern.fullmatch(name) is not None and not Path(name).expanduser().exists()
