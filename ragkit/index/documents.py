"""Documents given to `Index.open(...).add/upsert` as objects: checked, and hashed for change detection."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable

from ragkit.corpus import Document
from ragkit.errors import RagkitError

DOCUMENT_KEY = "doc:"  # docstore key prefix of documents added through `Index.open`, not from files


def as_documents(documents: Iterable[Document | dict]) -> list[Document]:
    """`Document`s, or dicts {"id", "text", "title", "metadata"}, checked; the last of a repeated id wins."""
    if isinstance(documents, (str, dict, Document)):
        raise RagkitError("`documents` must be a list of documents (Document or dict), not a single one")
    out: dict[str, Document] = {}
    for i, item in enumerate(documents):
        if isinstance(item, dict):
            doc_id = item.get("id", item.get("_id", item.get("doc_id")))
            text, title, metadata = item.get("text"), item.get("title") or "", item.get("metadata") or {}
            item = Document(str(doc_id) if doc_id is not None else "", text, title, metadata)
        if not isinstance(item, Document):
            raise RagkitError(f"documents[{i}] must be a Document or a dict, got {type(item).__name__}")
        if not item.doc_id:
            raise RagkitError(f"documents[{i}] has no id: give each document an 'id'")
        if (
            not isinstance(item.text, str)
            or not isinstance(item.title, str)
            or not isinstance(item.metadata, dict)
        ):
            raise RagkitError(
                f"documents[{i}] ({item.doc_id!r}) needs a string 'text', an optional string 'title' "
                "and an optional dict 'metadata'"
            )
        if not (item.text.strip() or item.title.strip()):
            raise RagkitError(f"documents[{i}] ({item.doc_id!r}) is empty")
        try:
            stored = json.dumps([item.doc_id, item.title, item.text, item.metadata], ensure_ascii=False)
        except (TypeError, ValueError) as e:
            raise RagkitError(f"documents[{i}] ({item.doc_id!r}) metadata is not JSON ({e})") from None
        try:
            stored.encode("utf-8")
        except UnicodeEncodeError as e:
            raise RagkitError(
                f"documents[{i}] ({item.doc_id!r}) holds a lone surrogate {stored[e.start]!r}, not valid "
                "Unicode; decode its bytes with errors='replace'"
            ) from None
        out[item.doc_id] = item
    return list(out.values())


def document_hash(doc: Document) -> str:
    """A hash of what the index stores of a document: an upsert re-embeds it only when this changes."""
    payload = json.dumps([doc.title, doc.text, doc.metadata], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()
