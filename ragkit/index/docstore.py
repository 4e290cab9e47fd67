"""SQLite docstore: every chunk's text, offsets, metadata and embedding, and every file's content hash.

Embeddings are kept (float32, before any PCA) so that an incremental update re-embeds only new or
changed files and then rebuilds the faiss index from all vectors, giving the same index as a full
rebuild.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from ragkit.corpus import document_text
from ragkit.errors import RagkitError
from ragkit.index.chunking import Chunk

DOCSTORE_FILE = "docstore.sqlite"

SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    content_hash TEXT NOT NULL,
    documents INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL,
    chunk_no INTEGER NOT NULL,
    doc_id TEXT NOT NULL,
    title TEXT NOT NULL,
    text TEXT NOT NULL,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    metadata TEXT NOT NULL,
    embedding BLOB NOT NULL,
    position INTEGER,
    UNIQUE (path, chunk_no)
);
CREATE INDEX IF NOT EXISTS chunks_position ON chunks (position);
"""


class Docstore:
    """Chunks and files of one index in SQLite.

    One connection, opened at once and shared by every thread under a lock (reads are a few rows
    per search): a web server's thread pool can search one `Retriever`, and since the open file is
    kept, a reader keeps its snapshot of the index when `ragkit index` swaps a new one in.
    A missing or damaged file is a one-line `RagkitError` that says to rebuild.
    """

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path, self.readonly = Path(path), readonly
        if readonly and not self.path.is_file():
            raise RagkitError(
                f"{self.path} is missing; rebuild the index with `ragkit index CORPUS --rebuild`"
            )
        self._lock = threading.RLock()
        uri = f"file:{self.path}?mode=ro" if readonly else f"file:{self.path}"
        with self._guard():
            self.db = sqlite3.connect(uri, uri=True, check_same_thread=False)
            if readonly:
                self.counts()  # fail now, with the one-line error, if the file is not a docstore
            else:
                self.db.executescript(SCHEMA)

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        """One thread at a time on the connection; SQLite's errors as one line that says what to do."""
        with self._lock, _DatabaseErrors(self.path):
            yield

    def close(self) -> None:
        with self._lock:
            self.db.close()

    def file_hashes(self) -> dict[str, str]:
        with self._guard():
            return dict(self.db.execute("SELECT path, content_hash FROM files"))

    def replace_file(
        self, path: str, content_hash: str, documents: int, chunks: list[Chunk], vectors: np.ndarray
    ):
        """Store one file's chunks and vectors, replacing any earlier version, in one transaction."""
        with self._guard(), self.db:
            self.db.execute("DELETE FROM chunks WHERE path = ?", (path,))
            self.db.executemany(
                "INSERT INTO chunks (path, chunk_no, doc_id, title, text, start, end, metadata, embedding) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (path, i, c.doc_id, c.title, c.text, c.start, c.end, json.dumps(c.metadata), v.tobytes())
                    for i, (c, v) in enumerate(zip(chunks, vectors.astype(np.float32), strict=True))
                ],
            )
            self.db.execute("INSERT OR REPLACE INTO files VALUES (?, ?, ?)", (path, content_hash, documents))

    def remove_files(self, paths: Iterable[str]) -> None:
        with self._guard(), self.db:
            for path in paths:
                self.db.execute("DELETE FROM chunks WHERE path = ?", (path,))
                self.db.execute("DELETE FROM files WHERE path = ?", (path,))

    def all_vectors(self, dim: int) -> np.ndarray:
        """Every vector, in (path, chunk_no) order, and record that order as each chunk's index position."""
        with self._guard():
            rows = list(self.db.execute("SELECT id, embedding FROM chunks ORDER BY path, chunk_no"))
        with self._guard(), self.db:
            self.db.executemany(
                "UPDATE chunks SET position = ? WHERE id = ?", [(i, r[0]) for i, r in enumerate(rows)]
            )
        if not rows:
            return np.zeros((0, dim), dtype=np.float32)
        return np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), dim)

    def chunks_at(self, positions: Iterable[int]) -> Iterator[dict]:
        """Chunk records by index position, in the order asked."""
        positions = [int(p) for p in positions]
        # One bound parameter (a JSON array), however many positions: no "too many SQL variables".
        query = (
            "SELECT position, id, path, doc_id, title, text, start, end, metadata FROM chunks "
            "WHERE position IN (SELECT value FROM json_each(?))"
        )
        with self._guard():
            found = {row[0]: row for row in self.db.execute(query, (json.dumps(positions),))}
        for p in positions:
            if p in found:
                _, chunk_id, path, doc_id, title, text, start, end, metadata = found[p]
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

    def positions_where(self, condition: str, params: list) -> np.ndarray:
        """Index positions of the chunks a compiled filter (`filters.compile_filter`) keeps, sorted."""
        with self._guard():
            rows = self.db.execute(
                f"SELECT position FROM chunks WHERE position IS NOT NULL AND ({condition}) ORDER BY position",
                params,
            )
            return np.array([p for (p,) in rows], dtype=np.int64)

    def vectors_at(self, positions: np.ndarray, dim: int) -> np.ndarray:
        """The stored vectors (before any PCA) of chunks by index position, in the order asked."""
        query = "SELECT position, embedding FROM chunks WHERE position IN (SELECT value FROM json_each(?))"
        with self._guard():
            found = dict(self.db.execute(query, (json.dumps([int(p) for p in positions]),)))
        if not len(positions):
            return np.zeros((0, dim), dtype=np.float32)
        return np.frombuffer(b"".join(found[int(p)] for p in positions), dtype=np.float32).reshape(-1, dim)

    def doc_ids_by_position(self) -> list[str]:
        """The document id of every indexed chunk, in index order."""
        with self._guard():
            rows = self.db.execute("SELECT doc_id FROM chunks WHERE position IS NOT NULL ORDER BY position")
            return [d for (d,) in rows]

    def texts_by_position(self) -> list[str]:
        """What the encoder embedded for every indexed chunk (title above text), in index order: what
        the BM25 part ranks."""
        with self._guard():
            rows = self.db.execute(
                "SELECT title, text FROM chunks WHERE position IS NOT NULL ORDER BY position"
            )
            return [document_text(title, text) for title, text in rows]

    def counts(self) -> dict[str, int]:
        with self._guard():
            files, documents = self.db.execute(
                "SELECT COUNT(*), COALESCE(SUM(documents), 0) FROM files"
            ).fetchone()
            (chunks,) = self.db.execute("SELECT COUNT(*) FROM chunks").fetchone()
        return {"files": files, "documents": documents, "chunks": chunks}


class _DatabaseErrors:
    """SQLite's errors on a damaged or locked docstore, as one line that says what to do."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, error, traceback) -> bool:
        if isinstance(error, sqlite3.OperationalError) and "readonly" in str(error):
            raise RagkitError(
                f"{self.path} cannot be written ({error}): is another `ragkit index` updating this index? "
                "Wait for it to finish, then run again"
            ) from error
        if isinstance(error, sqlite3.DatabaseError):
            raise RagkitError(
                f"{self.path} is damaged or not a ragkit docstore ({error}); rebuild the index with `rebuild`"
            ) from error
        return False
