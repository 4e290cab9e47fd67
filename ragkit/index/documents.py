"""Documents given to `Index.open(...).add/upsert` as objects: checked, and hashed for change detection."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from numbers import Integral

from ragkit.corpus import Document
from ragkit.errors import RagkitError
from ragkit.io import surrogate_at

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
            doc = str(doc_id) if doc_id is not None else ""
            item = Document(doc, text, title, metadata)  # type: ignore[arg-type]  # checked below, by index
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
        try:  # NaN and Infinity are not JSON: SQLite's JSON functions could not read the row
            stored = json.dumps(
                [item.doc_id, item.title, item.text, item.metadata], ensure_ascii=False, allow_nan=False
            )
        except (TypeError, ValueError) as e:
            raise RagkitError(
                f"documents[{i}] ({item.doc_id!r}) metadata is not JSON ({e}); use strings, finite "
                "numbers, booleans or null"
            ) from None
        if (at := surrogate_at(stored)) is not None:
            raise RagkitError(
                f"documents[{i}] ({item.doc_id!r}) holds a lone surrogate {stored[at]!r}, not valid "
                "Unicode; decode its bytes with errors='replace'"
            )
        out[item.doc_id] = item
    return list(out.values())


def document_ids(ids: Iterable[str | int] | str | int) -> list[str]:
    """Ids to delete, as strings, checked: one id (a string or a number) or a list of them."""
    if isinstance(ids, (str, Integral)) and not isinstance(ids, bool):
        ids = [ids]
    if ids is None or isinstance(ids, (bytes, dict, bool)) or not isinstance(ids, Iterable):
        raise RagkitError(f"`ids` must be an id or a list of ids (strings), got {type(ids).__name__}")
    out = []
    for i, doc_id in enumerate(ids):
        if not isinstance(doc_id, (str, Integral)) or isinstance(doc_id, bool):
            raise RagkitError(f"`ids`[{i}] is {type(doc_id).__name__}; ids are strings")
        doc_id = str(doc_id)
        if (at := surrogate_at(doc_id)) is not None:
            raise RagkitError(
                f"`ids`[{i}] {doc_id!r} holds a lone surrogate at character {at}, not valid Unicode"
            )
        out.append(doc_id)
    return out


def document_hash(doc: Document) -> str:
    """A hash of what the index stores of a document: an upsert re-embeds it only when this changes."""
    payload = json.dumps([doc.title, doc.text, doc.metadata], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()
