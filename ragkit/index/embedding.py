"""The one embed loop of an index build: documents -> chunks -> vectors -> docstore, a unit at a time.

A unit is what is committed as one: a corpus file (all its documents), one document given to the
documents API (`Index.open(...).upsert`), or a part of a file embedded on a Ray actor (ray_embed.py):
the three paths that embed share this loop. Chunks are embedded in groups of `EMBED_GROUP`, across and
within units, and a unit's chunks and vectors are committed together once all of them have vectors,
so an interrupted build resumes at the first unit not committed. Progress moves after every encode
batch: chunks embedded, tokens/s, and a time left from the tokens left (estimated from the tokens per
unit so far); a corpus of one large file counts its documents, not its one file.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from rich.progress import TaskID

from ragkit.corpus import Document
from ragkit.encoders import Encoder
from ragkit.progress import progress_bar
from ragkit.retrieval.chunking import Chunk, ChunkingConfig, chunk_document

EMBED_GROUP = 256  # chunks per encode call (sorted by length within it)
PART_CHUNKS = 1024  # a unit larger than this is stored in parts as it goes (a 50 MB file: hours)


class ChunkSink(Protocol):
    """Where the loop commits each unit: the index's `Docstore`, or a Ray actor's list of results."""

    def replace_file(
        self, path: str, content_hash: str, documents: int, chunks: list[Chunk], vectors: np.ndarray
    ) -> None:
        """Store one unit's chunks and vectors, replacing any earlier version of it."""

    def add_part(self, path: str, content_hash: str, chunks: list[Chunk], vectors: np.ndarray) -> None:
        """Store the next chunks of a large unit before it is done, kept if the run is interrupted."""

    def finish_parts(
        self, path: str, content_hash: str, documents: int, chunks: list[Chunk], vectors: np.ndarray
    ) -> None:
        """Store the last chunks of a unit whose first ones `add_part` stored: the unit is done."""

    def stored_part(self, path: str, content_hash: str) -> int:
        """How many first chunks of this unit an interrupted run already stored as parts."""

    def remove_files(self, paths: Iterable[str]) -> None:
        """Drop what earlier versions of these units stored."""


@dataclass
class EmbedUnit:
    """Documents committed as one under `key` (a file's relative path, or "doc:" + a document id).

    `remove_if_empty`: a file that yields no chunks now is dropped from the docstore (what an earlier
    version stored goes); a document without text is stored with no chunks, so it is not redone.
    """

    key: str
    content_hash: str
    documents: list[Document]
    remove_if_empty: bool = True


@dataclass
class _Pending:
    unit: EmbedUnit
    chunks: list[Chunk] = field(default_factory=list)
    vectors: list[np.ndarray] = field(default_factory=list)  # of chunks[stored:embedded]
    doc_ends: list[int] = field(default_factory=list)  # per document: chunks up to and including it
    chunked: bool = False
    embedded: int = 0  # chunks with vectors so far (the first ones, in order)
    stored: int = 0  # chunks stored as parts so far (the first ones; by this run or one interrupted)
    reported: int = 0  # documents counted as done on the bar


@dataclass
class EmbedTotals:
    """What an embed loop did: chunks and tokens embedded, and the seconds it took."""

    chunks: int = 0
    tokens: int = 0
    seconds: float = 0.0


class EmbedProgress:
    """The bar: units (files or documents) done of the total, chunks, tokens/s and time left.

    The time left is the units left times the tokens per unit so far, at the tokens/s so far.
    """

    def __init__(self, unit: str, total: int, enabled: bool) -> None:
        self.unit, self.total, self.done = unit, total, 0
        self.chunks = self.tokens = 0
        self.started = time.perf_counter()
        self.bar = progress_bar(
            "embedding",
            "{task.fields[unit]} · {task.fields[chunks]} chunks · {task.fields[rate]} tokens/s · "
            "{task.fields[left]} left",
            enabled=enabled,
        )
        self.task = TaskID(-1)  # added on entering

    def __enter__(self) -> EmbedProgress:
        self.bar.__enter__()
        self.task = self.bar.add_task(
            "embedding", total=self.total, unit=self.unit, chunks=0, rate="-", left="-"
        )
        return self

    def __exit__(self, *exc) -> None:
        self.bar.__exit__(*exc)

    def count_documents(self, documents: int) -> None:
        """Count documents instead of files (a corpus of one file: its documents are the work)."""
        self.unit, self.total, self.done = "documents", documents, 0
        self.bar.update(self.task, total=documents, completed=0, unit="documents")

    def embedded(self, texts: int, tokens: int) -> None:
        """After each encode batch."""
        self.chunks += texts
        self.tokens += tokens
        self._show()

    def advance(self, units: int) -> None:
        """Count `units` more as done and redraw."""
        if units:
            self.done += units
            self._show()

    def _show(self) -> None:
        seconds = time.perf_counter() - self.started
        rate = self.tokens / seconds if seconds > 0 else 0.0
        left = "-"
        if self.done and rate > 0:
            left = _clock((self.total - self.done) * (self.tokens / self.done) / rate)
        self.bar.update(
            self.task, completed=self.done, chunks=f"{self.chunks:,}", rate=f"{rate:,.0f}", left=left
        )


def _clock(seconds: float) -> str:
    minutes, s = divmod(int(seconds), 60)
    hours, m = divmod(minutes, 60)
    return f"{hours}:{m:02d}:{s:02d}"


def embed_units(
    units: Iterable[EmbedUnit],
    encoder: Encoder,
    store: ChunkSink,
    chunking: ChunkingConfig,
    progress: EmbedProgress,
    batch_size: int = 32,
) -> EmbedTotals:
    """Chunk, embed and commit every unit; returns the chunks and tokens embedded and the time taken."""
    totals = EmbedTotals()
    started = time.perf_counter()
    pending: list[_Pending] = []
    group: list[tuple[_Pending, Chunk]] = []

    def flush() -> None:
        if group:
            texts = [c.embedding_text() for _, c in group]
            vectors = encoder.encode_documents(
                texts, batch_size=batch_size, show_progress=False, on_batch=progress.embedded
            )
            start = 0
            for _, grouped in itertools.groupby(group, key=lambda item: id(item[0])):  # a unit's chunks
                run = list(grouped)
                state = run[0][0]
                state.vectors.append(vectors[start : start + len(run)])
                state.embedded += len(run)
                start += len(run)
            totals.chunks += len(group)
            totals.tokens += sum(c.tokens for _, c in group)
            group.clear()
        commit_ready()

    def commit_ready() -> None:
        for state in list(pending):
            if progress.unit == "documents":  # a document is done once all its chunks have vectors
                before = state.reported
                while (
                    state.reported < len(state.doc_ends) and state.doc_ends[state.reported] <= state.embedded
                ):
                    state.reported += 1
                progress.advance(state.reported - before)
            if state.chunked and state.embedded == len(state.chunks):
                _commit(state, store, encoder.dim)
                pending.remove(state)
                if progress.unit != "documents":
                    progress.advance(1)
            elif state.embedded - state.stored >= PART_CHUNKS:  # a large unit: keep what is done
                store.add_part(
                    state.unit.key,
                    state.unit.content_hash,
                    state.chunks[state.stored : state.embedded],
                    np.concatenate(state.vectors),
                )
                state.vectors, state.stored = [], state.embedded

    for unit in units:
        state = _Pending(unit)
        pending.append(state)
        # the first chunks an interrupted run stored as parts are not embedded again
        state.stored = state.embedded = store.stored_part(unit.key, unit.content_hash)
        for document in unit.documents:
            for chunk in chunk_document(document, encoder.tokenizer, chunking):
                state.chunks.append(chunk)
                if len(state.chunks) <= state.stored:
                    continue
                group.append((state, chunk))
                if len(group) >= EMBED_GROUP:
                    flush()
            state.doc_ends.append(len(state.chunks))
        state.chunked = True
        commit_ready()
    flush()
    totals.seconds = time.perf_counter() - started
    return totals


def _commit(state: _Pending, store: ChunkSink, dim: int) -> None:
    unit = state.unit
    if not state.chunks and unit.remove_if_empty:
        store.remove_files([unit.key])
        return
    vectors = np.concatenate(state.vectors) if state.vectors else np.zeros((0, dim), dtype=np.float32)
    if state.stored:  # a large unit: its first chunks are stored as parts
        rest = state.chunks[state.stored :]
        store.finish_parts(unit.key, unit.content_hash, len(unit.documents), rest, vectors)
    else:
        store.replace_file(unit.key, unit.content_hash, len(unit.documents), state.chunks, vectors)
