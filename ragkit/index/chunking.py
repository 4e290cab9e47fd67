"""Split documents into overlapping windows of the encoder's own tokens, keeping character offsets."""

from __future__ import annotations

from dataclasses import dataclass

from transformers import PreTrainedTokenizerBase

from ragkit.corpus import Document, document_text
from ragkit.errors import RagkitError


@dataclass(frozen=True)
class ChunkingConfig:
    chunk_size: int = 256  # tokens per chunk
    overlap: int = 32  # tokens shared by neighbouring chunks

    def __post_init__(self) -> None:
        if self.chunk_size < 1:
            raise RagkitError(f"chunk size must be at least 1 token, got {self.chunk_size}")
        if not 0 <= self.overlap < self.chunk_size:
            raise RagkitError(f"overlap must be >= 0 and smaller than the chunk size, got {self.overlap}")


@dataclass
class Chunk:
    doc_id: str
    title: str
    text: str
    start: int  # character offsets of `text` in the document's text
    end: int
    metadata: dict
    tokens: int  # text tokens in this chunk

    def embedding_text(self) -> str:
        """What the encoder sees: the title (when the document has one) above the chunk."""
        return document_text(self.title, self.text)


def chunk_document(doc: Document, tokenizer: PreTrainedTokenizerBase, config: ChunkingConfig) -> list[Chunk]:
    offsets = tokenizer(doc.text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    if not offsets:  # a title without text
        return [Chunk(doc.doc_id, doc.title, doc.text, 0, len(doc.text), doc.metadata, 0)]
    step = config.chunk_size - config.overlap
    chunks = []
    for first in range(0, len(offsets), step):
        window = offsets[first : first + config.chunk_size]
        start, end = window[0][0], window[-1][1]
        chunks.append(
            Chunk(doc.doc_id, doc.title, doc.text[start:end], start, end, doc.metadata, len(window))
        )
        if first + config.chunk_size >= len(offsets):
            break
    return chunks
