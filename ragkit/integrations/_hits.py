"""What every adapter passes along with a hit's text: where it came from and how it scored."""

from __future__ import annotations

from ragkit.encoders import Encoder
from ragkit.encoders.loading import DEFAULT_ENCODER
from ragkit.index import Hit, Retriever


def hit_metadata(hit: Hit) -> dict:
    """The hit's own metadata, then ragkit's fields (which win on a clash, so they stay reliable)."""
    return {
        **hit.metadata,
        "score": hit.score,
        "doc_id": hit.doc_id,
        "path": hit.path,
        "title": hit.title,
        "chunk_id": hit.chunk_id,
        "start": hit.start,
        "end": hit.end,
    }


def hit_id(hit: Hit) -> str:
    """A chunk's stable id: its document's id and its place in the document."""
    return f"{hit.doc_id}#{hit.chunk_id}"


def as_encoder(encoder: Encoder | str | None) -> Encoder:
    """An `Encoder`, or the name or path to load one from (None: the built-in default)."""
    return encoder if isinstance(encoder, Encoder) else Encoder.load(encoder or DEFAULT_ENCODER)


def as_retriever(retriever: Retriever | str) -> Retriever:
    """A `Retriever`, or the index directory to load one from."""
    return retriever if isinstance(retriever, Retriever) else Retriever.load(retriever)
