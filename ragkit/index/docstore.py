"""SQLite docstore: every chunk's text, offsets, metadata and embedding, and every file's content hash.

Chunk ids are the FAISS ids. Rows are versioned by the index's generation (the manifest's
`generation`): a row is `added` in one generation and `removed` in a later one, so an update writes
generation g+1 into the same file while readers of generation g keep seeing exactly their version;
the manifest naming g+1 is what commits it. Embeddings are kept (float32, before any PCA), so an
update embeds only new or changed files and a retrain reads the vectors back instead of re-embedding.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ragkit.corpus import document_text
from ragkit.errors import RagkitError
from ragkit.io import write_error
from ragkit.io.records import from_known_fields
from ragkit.retrieval.chunking import Chunk

DOCSTORE_FILE = "docstore.sqlite"

SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    path TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    documents INTEGER NOT NULL,
    added INTEGER NOT NULL,
    removed INTEGER
);
CREATE INDEX IF NOT EXISTS files_path ON files (path);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    path TEXT NOT NULL,
    chunk_no INTEGER NOT NULL,
    doc_id TEXT NOT NULL,
    title TEXT NOT NULL,
    text TEXT NOT NULL,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    metadata TEXT NOT NULL,
    added INTEGER NOT NULL,
    removed INTEGER
);
CREATE INDEX IF NOT EXISTS chunks_path ON chunks (path);
-- Which rows a generation sees, without reading the rows (counts, ids, changes).
CREATE INDEX IF NOT EXISTS chunks_generation ON chunks (added, removed);
CREATE INDEX IF NOT EXISTS chunks_removed ON chunks (removed);
-- Embeddings apart from the texts: scanning texts (BM25) or counting never reads the vectors.
CREATE TABLE IF NOT EXISTS vectors (id INTEGER PRIMARY KEY, embedding BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
_PART = "part:"  # meta key of a file stored in parts so far: {"hash", "chunks"}
VISIBLE = "added <= :g AND (removed IS NULL OR removed > :g)"  # the rows of generation :g


@dataclass(frozen=True)
class Counts:
    """What one generation of an index holds (manifest.json's "counts")."""

    files: int = 0
    documents: int = 0
    chunks: int = 0
    vectors: int = 0  # in the FAISS index; the docstore's own counts leave it 0

    @classmethod
    def from_json(cls, data: dict) -> Counts:
        """The record of a manifest's "counts" object; an index from before ragkit recorded its vectors
        had one per chunk."""
        counts = from_known_fields(cls, data)
        return counts if "vectors" in data else replace(counts, vectors=counts.chunks)

    def with_vectors(self, vectors: int) -> Counts:
        """These counts, with the FAISS index's number of vectors."""
        return replace(self, vectors=vectors)


class Docstore:
    """Chunks and files of one index in SQLite, as seen by one generation.

    A reader opens it `readonly` at the manifest's generation; a writer at the generation it is
    writing (the current one + 1), where its own uncommitted rows are visible and the rows it replaced
    are not. One connection, opened at once and shared by every thread under a lock (reads are a few
    rows per search), so a web server's thread pool can search one `Retriever`. SQLite's WAL journal
    lets readers read while a writer writes. A missing or damaged file is a one-line `RagkitError`
    that says to rebuild.
    """

    def __init__(self, path: Path, *, generation: int = 1, readonly: bool = False) -> None:
        self.path, self.readonly, self.generation = Path(path), readonly, generation
        if readonly and not self.path.is_file():
            raise RagkitError(f"{self.path} is missing; build the index again with `rebuild`")
        self._lock = threading.RLock()
        uri = f"file:{self.path}?mode=ro" if readonly else f"file:{self.path}"
        with self._guard():
            self.db = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=30)
            if readonly:
                self.counts()  # fail now, with the one-line error, if the file is not a docstore
            else:
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.executescript(SCHEMA)

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        """One thread at a time on the connection; SQLite's errors as one line that says what to do."""
        with self._lock, _DatabaseErrors(self.path):
            yield

    def _rows(self, sql: str, params: dict | tuple = ()) -> list[tuple]:
        with self._guard():
            if isinstance(params, dict):
                params = {"g": self.generation, **params}
            return self.db.execute(sql, params).fetchall()

    def close(self) -> None:
        """Close the SQLite connection."""
        with self._lock:
            self.db.close()

    # --- writing (a writer's generation: the one it is making) ---

    def begin(self, kind: str) -> bool:
        """Start (or resume) writing this generation for `kind` of change ("folder:<path>",
        "documents:<digest>").
        Uncommitted rows of an interrupted change of another kind are rolled back first; True if
        uncommitted rows of the same kind are kept (a resume)."""
        with self._guard(), self.db:
            row = self.db.execute("SELECT value FROM meta WHERE key = 'pending'").fetchone()
            pending = json.loads(row[0]) if row else None
            resumed = pending == {"kind": kind, "generation": self.generation}
            if pending is not None and not resumed:
                self._rollback()
            self.db.execute(
                "INSERT OR REPLACE INTO meta VALUES ('pending', ?)",
                (json.dumps({"kind": kind, "generation": self.generation}),),
            )
        return resumed

    def _rollback(self) -> None:
        """Undo every uncommitted change (rows added, or marked removed, after the last commit)."""
        g = self.generation
        self.db.execute("DELETE FROM meta WHERE key LIKE ?", (_PART + "%",))
        self.db.execute("DELETE FROM vectors WHERE id IN (SELECT id FROM chunks WHERE added >= ?)", (g,))
        for table in ("chunks", "files"):
            self.db.execute(f"DELETE FROM {table} WHERE added >= ?", (g,))
            self.db.execute(f"UPDATE {table} SET removed = NULL WHERE removed >= ?", (g,))

    def abandon(self) -> None:
        """Nothing to commit after all: forget the pending change."""
        with self._guard(), self.db:
            self.db.execute("DELETE FROM meta WHERE key = 'pending'")

    def committed(self, keep_from: int) -> None:
        """The manifest now names this generation: forget the pending change, and delete rows no
        reader of generation `keep_from` or later can see (removed at or before it)."""
        with self._guard(), self.db:
            self.db.execute("DELETE FROM meta WHERE key = 'pending'")
            self.db.execute(
                "DELETE FROM vectors WHERE id IN (SELECT id FROM chunks WHERE removed <= ?)", (keep_from,)
            )
            for table in ("chunks", "files"):
                self.db.execute(f"DELETE FROM {table} WHERE removed <= ?", (keep_from,))

    def replace_file(
        self, path: str, content_hash: str, documents: int, chunks: list[Chunk], vectors: np.ndarray
    ):
        """Store one file's chunks and vectors, replacing any earlier version, in one transaction."""
        with self._guard(), self.db:
            self._remove(path)
            self._insert(path, chunks, vectors, 0)
            self._file_row(path, content_hash, documents)

    def finish_parts(
        self, path: str, content_hash: str, documents: int, chunks: list[Chunk], vectors: np.ndarray
    ) -> None:
        """Store the last chunks of a file whose first ones `add_part` stored, and the file, in one
        transaction: from the generation's commit on, readers see the whole file."""
        with self._guard(), self.db:
            first = self._parts(path, content_hash)
            if first is None:
                raise RagkitError(f"the stored parts of {path} are gone; run the build again")
            self._insert(path, chunks, vectors, first)
            self.db.execute("DELETE FROM meta WHERE key = ?", (_PART + path,))
            self._file_row(path, content_hash, documents)

    def _file_row(self, path: str, content_hash: str, documents: int) -> None:
        self.db.execute(
            "INSERT INTO files VALUES (?, ?, ?, ?, NULL)", (path, content_hash, documents, self.generation)
        )

    def stored_part(self, path: str, content_hash: str) -> int:
        """How many of the first chunks of this version of `path` an interrupted run stored as parts
        (`add_part`): a rerun embeds only the chunks after them."""
        with self._guard():
            return self._parts(path, content_hash) or 0

    def add_part(self, path: str, content_hash: str, chunks: list[Chunk], vectors: np.ndarray) -> None:
        """Store the next chunks of a large file before the file is done, in one transaction, so an
        interruption keeps them; readers see none of them until the file's last chunks
        (`finish_parts`) and the generation are committed."""
        with self._guard(), self.db:
            first = self._parts(path, content_hash)
            if first is None:  # the file's first part: its earlier version goes, as in `replace_file`
                self._remove(path)
            self._insert(path, chunks, vectors, first or 0)
            record = json.dumps({"hash": content_hash, "chunks": (first or 0) + len(chunks)})
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (_PART + path, record))

    def drop_unfinished_parts(self) -> None:
        """Parts of files that were not finished (a file gone from the corpus since an interrupted
        run stored them): they leave with the generation's other rows of those files."""
        with self._guard(), self.db:
            rows = self.db.execute("SELECT key FROM meta WHERE key LIKE ?", (_PART + "%",)).fetchall()
            for (key,) in rows:
                self._remove(key.removeprefix(_PART))

    def _parts(self, path: str, content_hash: str) -> int | None:
        """Chunks of `path` stored as parts of this content; None if there are none (or of other content)."""
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (_PART + path,)).fetchone()
        if row is None:
            return None
        record = json.loads(row[0])
        return record["chunks"] if record["hash"] == content_hash else None

    def _insert(self, path: str, chunks: list[Chunk], vectors: np.ndarray, first: int) -> None:
        """Chunk rows `first`, `first + 1`, ... of `path`, and their vectors (inside a transaction)."""
        vectors = np.asarray(vectors, dtype=np.float32)
        for chunk_no, (c, vector) in enumerate(zip(chunks, vectors, strict=True), start=first):
            row = self.db.execute(
                "INSERT INTO chunks (path, chunk_no, doc_id, title, text, start, end, metadata, added) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    path,
                    chunk_no,
                    c.doc_id,
                    c.title,
                    c.text,
                    c.start,
                    c.end,
                    json.dumps(c.metadata, allow_nan=False),  # valid JSON, which SQLite reads
                    self.generation,
                ),
            )
            self.db.execute("INSERT INTO vectors VALUES (?, ?)", (row.lastrowid, vector.tobytes()))

    def remove_files(self, paths: Iterable[str]) -> None:
        """Mark every chunk of `paths` removed by this generation (readers of the current one still see
        them)."""
        with self._guard(), self.db:
            for path in paths:
                self._remove(path)

    def _remove(self, path: str) -> None:
        """This generation's rows of `path` go (parts stored so far too); earlier generations' are
        marked removed by it."""
        g = self.generation
        self.db.execute("DELETE FROM meta WHERE key = ?", (_PART + path,))
        self.db.execute(
            "DELETE FROM vectors WHERE id IN (SELECT id FROM chunks WHERE path = ? AND added = ?)", (path, g)
        )
        for table in ("chunks", "files"):
            self.db.execute(f"DELETE FROM {table} WHERE path = ? AND added = ?", (path, g))
            self.db.execute(f"UPDATE {table} SET removed = ? WHERE path = ? AND removed IS NULL", (g, path))

    def has_changes(self) -> bool:
        """Whether this generation adds or removes any chunk."""
        ((found,),) = self._rows(
            "SELECT EXISTS (SELECT 1 FROM chunks WHERE added = :g) "
            "OR EXISTS (SELECT 1 FROM chunks WHERE removed = :g AND added < :g)",
            {},
        )
        return bool(found)

    def changes(self, dim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """What this generation changes in the FAISS index: (ids added, their vectors, ids removed)."""
        added = self._rows(
            "SELECT c.id, v.embedding FROM chunks c JOIN vectors v ON v.id = c.id "
            "WHERE c.added = :g ORDER BY c.id",
            {},
        )
        removed = self._rows("SELECT id FROM chunks WHERE removed = :g AND added < :g ORDER BY id", {})
        return _ids(added), _vectors(added, dim), np.array([i for (i,) in removed], dtype=np.int64)

    # --- reading (the generation's rows) ---

    def file_hashes(self) -> dict[str, str]:
        """{path: content hash} of the files this generation holds: what an update compares with."""
        return dict(self._rows(f"SELECT path, content_hash FROM files WHERE {VISIBLE}", {}))

    def vector_blocks(self, dim: int, block: int = 65_536) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Every chunk's (ids, vectors), in id order, a block at a time: memory stays bounded."""
        last = -1
        while True:
            rows = self._rows(  # CROSS JOIN: walk the vectors in id order, look each chunk up
                "SELECT v.id, v.embedding FROM vectors v CROSS JOIN chunks c ON c.id = v.id "
                "WHERE v.id > :last AND c.added <= :g AND (c.removed IS NULL OR c.removed > :g) "
                "ORDER BY v.id LIMIT :n",
                {"last": last, "n": block},
            )
            if not rows:
                return
            yield _ids(rows), _vectors(rows, dim)
            last = rows[-1][0]

    def sample_vectors(self, dim: int, n: int, seed: int = 0) -> np.ndarray:
        """Up to `n` of the vectors, a seeded sample (what PCA and IVF train on)."""
        ids = self.ids()
        if len(ids) > n:
            ids = np.sort(np.random.default_rng(seed).choice(ids, n, replace=False))
        return self.vectors_at(ids, dim)

    def ids(self) -> np.ndarray:
        """The ids of the chunks this generation holds, sorted (the FAISS ids)."""
        return _ids(self._rows(f"SELECT id FROM chunks WHERE {VISIBLE} ORDER BY id", {}))

    def chunks_at(self, ids: Iterable[int]) -> Iterator[dict]:
        """Chunk records by id, in the order asked."""
        ids = [int(i) for i in ids]
        # One bound parameter (a JSON array), however many ids: no "too many SQL variables".
        query = (
            "SELECT id, path, doc_id, title, text, start, end, metadata FROM chunks "
            "WHERE id IN (SELECT value FROM json_each(?))"
        )
        found = {row[0]: row for row in self._rows(query, (json.dumps(ids),))}
        for i in ids:
            if i in found:
                chunk_id, path, doc_id, title, text, start, end, metadata = found[i]
                yield dict(
                    chunk_id=chunk_id,
                    path=path,
                    doc_id=doc_id,
                    title=title,
                    text=text,
                    start=start,
                    end=end,
                    metadata=json.loads(metadata),
                )

    def ids_where(self, condition: str, params: list) -> np.ndarray:
        """Ids of the chunks a compiled filter (`filters.compile_filter`) keeps, sorted."""
        g = self.generation
        rows = self._rows(
            f"SELECT id FROM chunks WHERE added <= ? AND (removed IS NULL OR removed > ?) AND ({condition}) "
            "ORDER BY id",
            (g, g, *params),
        )
        return _ids(rows)

    def vectors_at(self, ids: np.ndarray, dim: int) -> np.ndarray:
        """The stored vectors (before any PCA) of chunks by id, in the order asked."""
        query = "SELECT id, embedding FROM vectors WHERE id IN (SELECT value FROM json_each(?))"
        found = dict(self._rows(query, (json.dumps([int(i) for i in ids]),)))
        if not len(ids):
            return np.zeros((0, dim), dtype=np.float32)
        return np.frombuffer(b"".join(found[int(i)] for i in ids), dtype=np.float32).reshape(-1, dim)

    def doc_ids(self) -> dict[int, str]:
        """Chunk id -> document id, for every chunk."""
        return dict(self._rows(f"SELECT id, doc_id FROM chunks WHERE {VISIBLE}", {}))

    def texts(self) -> tuple[np.ndarray, list[str]]:
        """(ids, what the encoder embedded: title above text) of every chunk, in id order: what the
        BM25 part ranks."""
        rows = self._rows(f"SELECT id, title, text FROM chunks WHERE {VISIBLE} ORDER BY id", {})
        return _ids(rows), [document_text(title, text) for _, title, text in rows]

    def counts(self) -> Counts:
        """Files, documents and chunks in this generation."""
        ((files, documents),) = self._rows(
            f"SELECT COUNT(*), COALESCE(SUM(documents), 0) FROM files WHERE {VISIBLE}", {}
        )
        ((chunks,),) = self._rows(f"SELECT COUNT(*) FROM chunks WHERE {VISIBLE}", {})
        return Counts(files=files, documents=documents, chunks=chunks)


def _ids(rows: list[tuple]) -> np.ndarray:
    return np.array([r[0] for r in rows], dtype=np.int64)


def _vectors(rows: list[tuple], dim: int) -> np.ndarray:
    if not rows:
        return np.zeros((0, dim), dtype=np.float32)
    return np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), dim)


class _DatabaseErrors:
    """SQLite's errors on a damaged or locked docstore, as one line that says what to do."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, error, traceback) -> None:  # any other error goes on as it is
        if isinstance(error, sqlite3.OperationalError) and any(
            limit in str(error) for limit in ("too large", "too many", "depth", "stack overflow")
        ):  # a filter past SQLite's limits on expressions: the data is fine
            raise RagkitError(
                f"the `filter` is too complex for SQLite ({error}); use $in for many values of one field"
            ) from error
        full = isinstance(error, sqlite3.OperationalError) and "disk is full" in str(error)
        if full and (failed := write_error(error, self.path.parent, "the previous index is intact")):
            raise failed from error
        if isinstance(error, sqlite3.OperationalError) and "readonly" in str(error):
            raise RagkitError(
                f"{self.path} cannot be written ({error}): is another writer updating this index? "
                "Wait for it to finish, then run again"
            ) from error
        if isinstance(error, sqlite3.DatabaseError):
            raise RagkitError(
                f"{self.path} is damaged or not a ragkit docstore ({error}); rebuild the index with `rebuild`"
            ) from error
