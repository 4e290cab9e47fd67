"""Documents and the files they come from: what `ragkit index`, `ragkit adapt --corpus` and `embed` read."""

from ragkit.corpus.document import Document, document_text
from ragkit.corpus.reader import (
    SUPPORTED,
    CorpusFile,
    Fields,
    ReadStats,
    check_corpus_path,
    file_format,
    list_files,
    read_documents,
    read_lines,
)

__all__ = [
    "SUPPORTED",
    "CorpusFile",
    "Document",
    "Fields",
    "ReadStats",
    "check_corpus_path",
    "document_text",
    "file_format",
    "list_files",
    "read_documents",
    "read_lines",
]
