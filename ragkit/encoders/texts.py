"""Texts checked before they reach a tokenizer: strings only, and valid Unicode."""

from __future__ import annotations

from collections.abc import Sequence

from ragkit.errors import RagkitError
from ragkit.io import surrogate_at


def check_texts(texts: Sequence[str], name: str) -> list[str]:
    """Strings only, and strings the tokenizer can take: lone surrogates (bytes decoded with
    `surrogateescape`) are refused with the position, instead of the tokenizer's TypeError."""
    if texts is None:
        raise RagkitError(f"{name} is None; pass a list of strings")
    if isinstance(texts, str):
        texts = [texts]
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise RagkitError(f"{name}[{i}] is {type(text).__name__}, not str; every text must be a string")
        if (at := surrogate_at(text)) is not None:
            raise RagkitError(
                f"{name}[{i}] holds a lone surrogate {text[at]!r} at character {at}, not valid "
                "Unicode; decode its bytes with errors='replace'"
            )
    return texts
