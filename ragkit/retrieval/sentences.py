"""The one sentence splitter: SimCSE's training sentences (adapt) and calibration's pseudo-queries (index)."""

from __future__ import annotations

import re

# A word ending in a full stop that rarely ends a sentence: the next word continues it.
ABBREVIATIONS = frozenset(
    {"dr.", "mr.", "mrs.", "ms.", "st.", "vs.", "no.", "e.g.", "i.e.", "al.", "cf.", "fig."}
)
# . ! ? and the whitespace after them, or a line break and the whitespace around it. No capital is
# required after the stop: lowercased corpora (Cranfield, MS MARCO) have sentences too.
_BOUNDARY = re.compile(r"(?<=[.!?])\s+|\s*\n\s*")


def split_sentences(text: str) -> list[str]:
    """`text`'s sentences in order, stripped, none empty: a sentence ends at . ! ? before whitespace
    (unless the word is one of `ABBREVIATIONS`) and at every line break."""
    sentences: list[str] = []
    start = 0
    for boundary in _BOUNDARY.finditer(text):
        piece = text[start : boundary.start()]
        if "\n" not in boundary.group() and _ends_in_abbreviation(piece):
            continue  # "Dr. Smith": the sentence goes on
        if piece.strip():
            sentences.append(piece.strip())
        start = boundary.end()
    if text[start:].strip():
        sentences.append(text[start:].strip())
    return sentences


def _ends_in_abbreviation(piece: str) -> bool:
    words = piece.rsplit(None, 1)
    return bool(words) and words[-1].lower() in ABBREVIATIONS
