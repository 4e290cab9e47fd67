"""The one check that a string is valid Unicode: text from bytes decoded with `surrogateescape` (file
names, some readers) holds lone surrogates, which UTF-8, SQLite and tokenizers all refuse."""

from __future__ import annotations

import os


def surrogate_at(text: str) -> int | None:
    """The position of the first lone surrogate in `text`, or None when it is valid Unicode."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        return e.start
    return None


def displayable_path(path: str | os.PathLike) -> str:
    """A path as valid Unicode: bytes that are not UTF-8 (a file name from another system) shown as
    `\\xff` escapes, so the name can be stored, printed and searched."""
    text = os.fspath(path)
    if surrogate_at(text) is None:
        return text
    return os.fsencode(text).decode("utf-8", errors="backslashreplace")
