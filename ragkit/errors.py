"""The one error type users see: a single line that says what went wrong and what to do."""


class RagkitError(Exception):
    """Bad input or a missing resource. The CLI prints it as one line, without a traceback."""
