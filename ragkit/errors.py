"""The one error type users see: a single line that says what went wrong and what to do."""


class RagkitError(Exception):
    """Bad input or a missing resource. The CLI prints it as one line, without a traceback."""


def first_line(error: BaseException) -> str:
    """The first line of an exception's message (or its type), for one-line errors about it."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
