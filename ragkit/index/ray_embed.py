"""Embedding a corpus past one machine, on Ray Data: `ragkit index DIR --ray ADDRESS`.

Files are read and chunked as Ray tasks; chunks are embedded by an actor pool (each actor loads the
encoder once; one per GPU on a GPU cluster); the vectors are written as Parquet shards, which ragkit
merges into the index's docstore file by file. Everything after that (FAISS, BM25, manifest, the
in-place update or the atomic swap) is the local build's own: the index is the same as a local build.
Ray is an optional extra: `pip install "ragkit[ray]"`.
"""

from __future__ import annotations

import json
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from ragkit.corpus import CorpusFile, Fields, ReadStats, document_text, read_documents
from ragkit.encoders import Encoder, EncoderConfig
from ragkit.errors import RagkitError
from ragkit.index.chunking import Chunk, ChunkingConfig, chunk_document
from ragkit.index.docstore import Docstore

ROWS_PER_BATCH = 256  # chunks per actor call


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


def _read_and_chunk(row: dict, *, tokenizer, chunking: ChunkingConfig, fields: Fields) -> list[dict]:
    """One file -> its chunks as rows (a file with none gives one marker row with chunk_no -1)."""
    file = CorpusFile(Path(row["path"]), row["relpath"], row["content_hash"])
    stats = ReadStats()
    documents = read_documents(file, fields, stats)
    chunks = [c for doc in documents for c in chunk_document(doc, tokenizer, chunking)]
    base = {"relpath": file.relpath, "content_hash": file.content_hash, "documents": len(documents)}
    if not chunks:
        empty = Chunk("", "", "", 0, 0, {}, 0)
        return [
            {
                **base,
                "n_chunks": 0,
                "chunk_no": -1,
                **_chunk_fields(empty),
                "skipped": json.dumps(stats.skipped),
            }
        ]
    return [
        {**base, "n_chunks": len(chunks), "chunk_no": i, **_chunk_fields(c), "skipped": "{}"}
        for i, c in enumerate(chunks)
    ]


def _chunk_fields(chunk: Chunk) -> dict:
    return {
        "doc_id": chunk.doc_id,
        "title": chunk.title,
        "text": chunk.text,
        "start": chunk.start,
        "end": chunk.end,
        "metadata": json.dumps(chunk.metadata),
        "tokens": chunk.tokens,
    }


class _EmbedActor:
    """A Ray actor holding one encoder (loaded once), embedding batches of chunk rows."""

    def __init__(self, config: EncoderConfig, fingerprint: str, precision: str, batch_size: int) -> None:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
        self.encoder = Encoder.load(config, device=device, precision=precision if device == "cpu" else None)
        if self.encoder.fingerprint()["config_hash"] != fingerprint:
            raise RagkitError("the encoder loaded on a Ray worker is not the one the index is built with")
        self.batch_size = batch_size

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        real = batch["chunk_no"] >= 0
        texts = [
            document_text(str(title), str(text))  # as a local build embeds it
            for title, text, keep in zip(batch["title"], batch["text"], real, strict=True)
            if keep
        ]
        vectors = np.zeros((len(real), self.encoder.dim), dtype=np.float32)
        if texts:
            vectors[real] = self.encoder.encode_documents(
                texts, batch_size=self.batch_size, show_progress=False
            )
        return {**batch, "vector": vectors}


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
    # Read and chunk tasks are light; the encoder actors get three quarters of the CPUs between them,
    # so that they never hold every CPU while the tasks that feed them wait (a Ray Data deadlock).
    actor_cpus = 1.0 if gpus else max(0.25, 0.75 * cpus / actors)
    rows = [{"path": str(f.path), "relpath": f.relpath, "content_hash": f.content_hash} for f in files]
    chunked = ray.data.from_items(rows).flat_map(
        _read_and_chunk,
        fn_kwargs={"tokenizer": encoder.tokenizer, "chunking": chunking, "fields": fields},
        num_cpus=0.25,
    )
    embedded = chunked.map_batches(
        _EmbedActor,
        fn_constructor_kwargs={
            "config": encoder.config,
            "fingerprint": encoder.fingerprint()["config_hash"],
            "precision": encoder.precision,
            "batch_size": batch_size,
        },
        batch_size=ROWS_PER_BATCH,
        concurrency=actors,
        num_gpus=1 if gpus else 0,
        num_cpus=actor_cpus,
    )
    shutil.rmtree(shard_dir, ignore_errors=True)
    embedded.write_parquet(str(shard_dir))  # the shards
    return _merge_shards(ray, shard_dir, store, stats, encoder.dim)


def _merge_shards(ray, shard_dir: Path, store: Docstore, stats: ReadStats, dim: int) -> tuple[int, int]:
    """Store each file once all its chunks have been read from the shards (any order, any shard)."""
    pending: dict[str, list[dict]] = defaultdict(list)
    chunks_done = tokens_done = 0
    for batch in ray.data.read_parquet(str(shard_dir)).iter_batches(batch_format="numpy"):
        for i in range(len(batch["relpath"])):
            row = {key: values[i] for key, values in batch.items()}
            relpath, n = str(row["relpath"]), int(row["n_chunks"])
            if n == 0:
                stats.skipped.update(json.loads(str(row["skipped"])))
                store.remove_files([relpath])  # skipped or empty now: drop what an earlier version stored
                continue
            pending[relpath].append(row)
            if len(pending[relpath]) == n:
                rows = sorted(pending.pop(relpath), key=lambda r: int(r["chunk_no"]))
                chunks = [
                    Chunk(
                        str(r["doc_id"]),
                        str(r["title"]),
                        str(r["text"]),
                        int(r["start"]),
                        int(r["end"]),
                        json.loads(str(r["metadata"])),
                        int(r["tokens"]),
                    )
                    for r in rows
                ]
                vectors = np.stack([np.asarray(r["vector"], dtype=np.float32) for r in rows]).reshape(-1, dim)
                store.replace_file(
                    relpath, str(rows[0]["content_hash"]), int(rows[0]["documents"]), chunks, vectors
                )
                chunks_done += len(chunks)
                tokens_done += sum(c.tokens for c in chunks)
    if pending:
        raise RagkitError(f"the Ray shards in {shard_dir} are incomplete ({len(pending)} files); run again")
    shutil.rmtree(shard_dir, ignore_errors=True)
    return chunks_done, tokens_done
