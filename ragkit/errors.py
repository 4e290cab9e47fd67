"""The one error type users see: a single line that says what went wrong and what to do."""

from __future__ import annotations

import re

_PARAMETER = re.compile(r"`([a-z][a-z0-9_]*)`")


class RagkitError(Exception):
    """Bad input or a missing resource. The CLI prints it as one line, without a traceback.

    Messages name Python parameters in backticks ("choose one of `pca` and `dim`"); the CLI shows
    each as the flag it maps to ("--pca", "--dim"), see `for_flags`.
    """


def for_flags(message: str, flags: dict[str, str]) -> str:
    """`message` with each backticked parameter that has a CLI flag shown as that flag."""
    return _PARAMETER.sub(lambda m: flags.get(m.group(1), m.group(0)), message)


def first_line(error: BaseException) -> str:
    """The first line of an exception's message (or its type), for one-line errors about it."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
