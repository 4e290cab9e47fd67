"""Split documents into overlapping windows of the encoder's own tokens, keeping character offsets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ragkit.corpus import Document, document_text
from ragkit.errors import RagkitError
from ragkit.io.records import from_known_fields

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


@dataclass(frozen=True)
class ChunkingConfig:
    """How documents are cut into chunks: tokens per chunk and tokens shared by neighbours."""

    chunk_size: int = 256  # tokens per chunk
    overlap: int = 32  # tokens shared by neighbouring chunks

    def __post_init__(self) -> None:
        if self.chunk_size < 1:
            raise RagkitError(f"chunk size must be at least 1 token, got {self.chunk_size}")
        if not 0 <= self.overlap < self.chunk_size:
            raise RagkitError(f"overlap must be >= 0 and smaller than the chunk size, got {self.overlap}")

    @classmethod
    def from_json(cls, data: dict) -> ChunkingConfig:
        """The config of a manifest's "chunking" object."""
        return from_known_fields(cls, data)


@dataclass
class Chunk:
    """A piece of a document as the index stores it, with its offsets in the document's text."""

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


BLOCK_CHARS = 100_000  # longer texts are tokenized in blocks cut at line breaks: bounded memory


def chunk_document(doc: Document, tokenizer: PreTrainedTokenizerBase, config: ChunkingConfig) -> list[Chunk]:
    """`doc` cut into overlapping windows of `config.chunk_size` tokens, at token boundaries of the
    encoder's tokenizer."""
    offsets = token_offsets(doc.text, tokenizer)
    if not len(offsets):  # a title without text
        return [Chunk(doc.doc_id, doc.title, doc.text, 0, len(doc.text), doc.metadata, 0)]
    step = config.chunk_size - config.overlap
    chunks = []
    for first in range(0, len(offsets), step):
        last = min(first + config.chunk_size, len(offsets)) - 1
        start, end = int(offsets[first, 0]), int(offsets[last, 1])
        chunks.append(
            Chunk(doc.doc_id, doc.title, doc.text[start:end], start, end, doc.metadata, last - first + 1)
        )
        if first + config.chunk_size >= len(offsets):
            break
    return chunks


def token_offsets(text: str, tokenizer: PreTrainedTokenizerBase) -> np.ndarray:
    """(tokens, 2) character offsets of `text`'s tokens (no special tokens).

    A text longer than `BLOCK_CHARS` is tokenized a block at a time and only the offsets are kept (a
    tokenizer's full encoding of a 50 MB file takes gigabytes). Blocks end after a run of line breaks
    (else before a space) in their second half, where byte-level BPE tokenizers split anyway; a
    SentencePiece tokenizer may tokenize a block's first word as if it began the text.
    """
    blocks: list[np.ndarray] = []
    start = 0
    while start < len(text) or not blocks:
        end = _block_end(text, start)
        encoded = tokenizer(text[start:end], add_special_tokens=False, return_offsets_mapping=True)
        blocks.append(np.asarray(encoded["offset_mapping"], dtype=np.int64).reshape(-1, 2) + start)
        start = end
    return np.concatenate(blocks)


def _block_end(text: str, start: int) -> int:
    end = start + BLOCK_CHARS
    if end >= len(text):
        return len(text)
    newline = text.rfind("\n", start + BLOCK_CHARS // 2, end)
    if newline > start:
        cut = newline + 1
        while cut < end and text[cut].isspace():  # the whole run of blank lines stays in this block
            cut += 1
        return cut
    space = text.rfind(" ", start + BLOCK_CHARS // 2, end)
    return space if space > start else end
