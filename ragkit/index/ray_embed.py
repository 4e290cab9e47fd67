"""Embedding a corpus past one machine, on Ray Data: `ragkit index DIR --ray ADDRESS`.

Files are read as Ray tasks and cut into parts of `DOCUMENTS_PER_PART` documents, so that one large
file is embedded by many actors at once; an actor pool (each actor loads the encoder once; one per GPU
on a GPU cluster) runs the local build's own embed loop (`embed_units`, ragkit/index/embedding.py)
over its parts and returns their chunks and vectors as Parquet shards, which ragkit merges into the
index's docstore file by file. Everything after that (FAISS, BM25, manifest, the in-place update or
the atomic swap) is the local build's own: the index is the same as a local build.
Ray is an optional extra: `pip install "ragkit[ray]"`.
"""

from __future__ import annotations

import json
import shutil
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from ragkit.corpus import CorpusFile, Document, Fields, ReadStats, read_documents
from ragkit.encoders import Encoder, EncoderConfig
from ragkit.encoders.precision import matching_precision
from ragkit.errors import RagkitError
from ragkit.index.docstore import Docstore
from ragkit.index.embedding import EmbedProgress, EmbedUnit, embed_units
from ragkit.retrieval.chunking import Chunk, ChunkingConfig

DOCUMENTS_PER_PART = 64  # a file's documents are embedded in parts of this many, on any actor
PARTS_PER_BATCH = 4  # parts per actor call


def start_ray(address: str) -> Any:
    """Connect to the cluster at `address` ("auto": the running one; "local": a new local instance)."""
    try:
        import ray
    except ImportError:
        raise RagkitError('`ray` needs Ray: pip install "ragkit[ray]"') from None
    if not ray.is_initialized():
        try:
            ray.init(
                address=address,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
            )
        except (ConnectionError, ValueError, RuntimeError) as e:
            raise RagkitError(
                f"cannot reach a Ray cluster at {address!r} ({e}); use 'local' or 'auto'"
            ) from e
    return ray


def _read_parts(row: dict, *, fields: Fields, per_part: int) -> list[dict]:
    """One file -> its documents in parts (a file with none: one empty part); its read stats on part 0."""
    file = CorpusFile(Path(row["path"]), row["relpath"], row["content_hash"])
    stats = ReadStats()
    documents = read_documents(file, fields, stats)
    parts = [documents[i : i + per_part] for i in range(0, len(documents), per_part)] or [[]]
    return [
        {
            "relpath": file.relpath,
            "content_hash": file.content_hash,
            "part": i,
            "parts": len(parts),
            "documents": json.dumps([asdict(d) for d in part]),
            "stats": json.dumps((stats if i == 0 else ReadStats()).to_json()),
        }
        for i, part in enumerate(parts)
    ]


class _Kept:
    """Where `embed_units` commits on an actor: each part's chunks and vectors, kept to be returned."""

    def __init__(self) -> None:
        self.parts: dict[str, tuple[list[Chunk], np.ndarray]] = {}
        self.started: dict[str, tuple[list[Chunk], list[np.ndarray]]] = {}  # parts of a large unit

    def replace_file(
        self, path: str, content_hash: str, documents: int, chunks: list[Chunk], vectors: np.ndarray
    ) -> None:
        self.parts[path] = (chunks, vectors)

    def add_part(self, path: str, content_hash: str, chunks: list[Chunk], vectors: np.ndarray) -> None:
        held = self.started.setdefault(path, ([], []))
        held[0].extend(chunks)
        held[1].append(vectors)

    def finish_parts(
        self, path: str, content_hash: str, documents: int, chunks: list[Chunk], vectors: np.ndarray
    ) -> None:
        first, vectors_first = self.started.pop(path)
        self.parts[path] = (first + chunks, np.concatenate([*vectors_first, vectors]))

    def stored_part(self, path: str, content_hash: str) -> int:
        return 0  # an actor's results come back whole; the local build's docstore resumes

    def remove_files(self, paths: Iterable[str]) -> None:
        for path in paths:
            self.parts[path] = ([], np.zeros((0, 0), dtype=np.float32))


class _EmbedActor:
    """A Ray actor holding one encoder (loaded once), embedding parts with the local build's loop."""

    def __init__(
        self,
        config: EncoderConfig,
        fingerprint: str,
        precision: str,
        batch_size: int,
        chunking: ChunkingConfig,
    ) -> None:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
        # The driver's encoder's precision, read: the one the manifest records, where this worker's
        # device runs it natively (`matching_precision`, as for queries), else the device's default.
        native = matching_precision(precision, torch.device(device))
        self.encoder = Encoder.load(config, device=device, precision=native)
        if self.encoder.fingerprint().config_hash != fingerprint:
            raise RagkitError("the encoder loaded on a Ray worker is not the one the index is built with")
        self.batch_size, self.chunking = batch_size, chunking

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        units = [
            EmbedUnit(str(i), "", [Document(**d) for d in json.loads(str(docs))], remove_if_empty=False)
            for i, docs in enumerate(batch["documents"])
        ]
        kept = _Kept()
        with EmbedProgress("parts", len(units), enabled=False) as progress:
            embed_units(units, self.encoder, kept, self.chunking, progress, self.batch_size)
        done = [kept.parts[unit.key] for unit in units]
        return {
            **{key: batch[key] for key in ("relpath", "content_hash", "part", "parts", "stats")},
            "documents": [len(unit.documents) for unit in units],
            "chunks": [json.dumps([asdict(c) for c in chunks]) for chunks, _ in done],
            "vectors": [np.asarray(vectors, dtype=np.float32).tobytes() for _, vectors in done],
        }


def embed_files_on_ray(
    files: list[CorpusFile],
    encoder: Encoder,
    store: Docstore,
    *,
    chunking: ChunkingConfig,
    fields: Fields,
    stats: ReadStats,
    address: str,
    actors: int | None,
    batch_size: int,
    shard_dir: Path,
) -> tuple[int, int]:
    """Embed `files` on Ray and store each file's chunks and vectors; returns (chunks, tokens)."""
    ray = start_ray(address)
    resources = ray.cluster_resources()
    gpus, cpus = int(resources.get("GPU", 0)), float(resources.get("CPU", 1))
    actors = actors or gpus or 2
    # Reading tasks are light; the encoder actors get three quarters of the CPUs between them, so
    # that they never hold every CPU while the tasks that feed them wait (a Ray Data deadlock).
    actor_cpus = 1.0 if gpus else max(0.25, 0.75 * cpus / actors)
    rows = [{"path": str(f.path), "relpath": f.relpath, "content_hash": f.content_hash} for f in files]
    parts = ray.data.from_items(rows).flat_map(
        _read_parts, fn_kwargs={"fields": fields, "per_part": DOCUMENTS_PER_PART}, num_cpus=0.25
    )
    embedded = parts.map_batches(
        _EmbedActor,
        fn_constructor_kwargs={
            "config": encoder.config,
            "fingerprint": encoder.fingerprint().config_hash,
            "precision": encoder.precision,
            "batch_size": batch_size,
            "chunking": chunking,
        },
        batch_size=PARTS_PER_BATCH,
        concurrency=actors,
        num_gpus=1 if gpus else 0,
        num_cpus=actor_cpus,
    )
    shutil.rmtree(shard_dir, ignore_errors=True)
    embedded.write_parquet(str(shard_dir))  # the shards
    return _merge_shards(ray, shard_dir, store, stats, encoder.dim)


def _merge_shards(ray, shard_dir: Path, store: Docstore, stats: ReadStats, dim: int) -> tuple[int, int]:
    """Store each file once all its parts have been read from the shards (any order, any shard)."""
    pending: dict[str, dict[int, dict]] = defaultdict(dict)
    chunks_done = tokens_done = 0
    for batch in ray.data.read_parquet(str(shard_dir)).iter_batches(batch_format="numpy"):
        for i in range(len(batch["relpath"])):
            row = {key: values[i] for key, values in batch.items()}
            relpath = str(row["relpath"])
            stats.add(json.loads(str(row["stats"])))
            pending[relpath][int(row["part"])] = row
            if len(pending[relpath]) < int(row["parts"]):
                continue
            rows = [part for _, part in sorted(pending.pop(relpath).items())]
            chunks = [Chunk(**c) for r in rows for c in json.loads(str(r["chunks"]))]
            if not chunks:  # skipped or empty now: drop what an earlier version stored
                store.remove_files([relpath])
                continue
            vectors = np.concatenate([np.frombuffer(r["vectors"], dtype=np.float32) for r in rows])
            documents = sum(int(r["documents"]) for r in rows)
            vectors = vectors.reshape(-1, dim)
            store.replace_file(relpath, str(rows[0]["content_hash"]), documents, chunks, vectors)
            chunks_done += len(chunks)
            tokens_done += sum(c.tokens for c in chunks)
    if pending:
        raise RagkitError(f"the Ray shards in {shard_dir} are incomplete ({len(pending)} files); run again")
    shutil.rmtree(shard_dir, ignore_errors=True)
    return chunks_done, tokens_done
