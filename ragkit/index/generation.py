"""One generation of an index: its FAISS index (trained again, or updated in place), its PCA, its
BM25 part and the manifest that commits it; and the removal of generations no reader needs."""

from __future__ import annotations

import re
import shutil
from datetime import datetime, timezone
from pathlib import Path

import faiss

from ragkit.encoders import Encoder
from ragkit.index.docstore import Docstore
from ragkit.index.faiss_index import (
    default_search_params,
    resolve_spec,
    trained,
    training_sample_size,
    with_ids,
)
from ragkit.index.manifest import IndexLayout, IndexManifest, TrainedState, index_file, lexical_dir
from ragkit.index.ondisk import add, disk_bytes, fill, ivfdata_file, lists_to_file, read_index
from ragkit.index.report import BuildReport
from ragkit.index.search_setting import Calibration
from ragkit.index.settings import IndexSettings
from ragkit.index.transform import PCA_TRAINING_SAMPLE, Transform
from ragkit.retrieval.lexical import LexicalIndex

RETRAIN_FACTOR = 2.0  # retrain the FAISS index / PCA once the corpus has grown or shrunk this much
ADD_BLOCK = 65_536  # vectors added to FAISS at a time


def write_generation(
    directory: Path,
    store: Docstore,
    encoder: Encoder,
    report: BuildReport,
    previous: IndexManifest | None,
    settings: IndexSettings,
) -> TrainedState:
    """The FAISS index and BM25 part of the store's generation, beside the previous ones; returns
    when the FAISS index / PCA were trained."""
    g, n = report.generation, store.counts().chunks
    lists_file = directory / ivfdata_file(g) if settings.on_disk else None
    added, vectors, removed = store.changes(encoder.dim) if previous else (None, None, None)
    removing = removed is not None and len(removed) > 0
    reason = "new index" if previous is None else retrain_reason(previous, n, removing)
    index: faiss.Index | None = None
    if not reason:
        assert previous is not None  # no previous generation is always a reason to train
        try:
            index = read_index(directory / previous.index_path)
        except RuntimeError:  # damaged or missing: the docstore holds every vector, so train again
            reason = f"{previous.index_path} was damaged or missing, so it was rebuilt from the docstore"
    if reason:
        transform, factory, index = train_and_fill(store, encoder.dim, n, settings, lists_file)
        pca_file = f"transform-{g}.pca"
        transform.save(directory, pca_file)
        report.transform, report.factory = transform.describe(pca_file), factory
        report.retrained = "" if previous is None else reason
        trained = TrainedState(generation=g, vectors=n)
    else:
        assert previous is not None and index is not None and added is not None and vectors is not None
        assert removed is not None
        if lists_file:  # the previous generation's lists stay as its readers mapped them
            lists_to_file(index, lists_file)
        transform = Transform.load(directory, previous.transform)
        if len(removed):
            index.remove_ids(removed)
        for first in range(0, len(added), ADD_BLOCK):
            block = slice(first, first + ADD_BLOCK)
            add(index, transform.apply(vectors[block]), added[block])
        report.vectors_added, report.vectors_removed = len(added), len(removed)
        report.transform, report.factory = previous.transform, previous.index.factory
        trained = previous.trained
    faiss.write_index(index, str(directory / index_file(g)))
    ids, texts = store.texts()
    LexicalIndex.build(texts, ids=ids).save(directory / lexical_dir(g))
    report.counts = store.counts().with_vectors(int(index.ntotal))
    size = (directory / index_file(g)).stat().st_size + (disk_bytes(lists_file) if lists_file else 0)
    report.bytes_per_vector = round(size / max(index.ntotal, 1), 1)
    return trained


def retrain_reason(previous: IndexManifest, n: int, removing: bool) -> str:
    """Why an update must train the FAISS index / PCA again; "" when it can update them in place."""
    layout, trained_on = previous.index, previous.trained.vectors or n
    learned = previous.transform.kind == "pca" or layout.trainable
    if learned and (n >= RETRAIN_FACTOR * trained_on or n * RETRAIN_FACTOR <= trained_on):
        return f"it has {n} chunks, {n / max(trained_on, 1):.1f}x the {trained_on} it was trained on"
    if removing and not layout.removable:
        return "an HNSW graph cannot remove vectors in place"
    return ""


def train_and_fill(
    store: Docstore, d: int, n: int, settings: IndexSettings, lists_file: Path | None
) -> tuple[Transform, str, faiss.Index]:
    """PCA / truncation and a FAISS index (and its factory string) trained on samples of the store's
    vectors, then filled with all of them a block at a time: memory is the index plus one block, or
    one block when the lists go to `lists_file` on disk."""
    pca, dim, whiten = settings.pca, settings.dim, settings.whiten
    transform = Transform.fit(store.sample_vectors(d, PCA_TRAINING_SAMPLE), pca=pca, dim=dim, whiten=whiten)
    factory = resolve_spec(settings.faiss_spec, n, transform.dim_out)
    index = with_ids(factory, transform.dim_out)
    if not index.is_trained:
        size = training_sample_size(factory, d=transform.dim_out, on_disk=settings.on_disk)
        index = trained(index, transform.apply(store.sample_vectors(d, size)))
    blocks = ((transform.apply(v), ids) for ids, v in store.vector_blocks(d, ADD_BLOCK))
    if lists_file:
        fill(index, blocks, lists_file)
    else:
        for vectors, ids in blocks:
            index.add_with_ids(vectors, ids)
    return transform, factory, index


def generation_manifest(
    params: dict,
    previous: IndexManifest | None,
    report: BuildReport,
    trained: TrainedState,
    *,
    corpus: str,
    settings: IndexSettings,
    calibration: Calibration | None,
    precision: str,
) -> IndexManifest:
    """The manifest that commits a build's or update's generation, keeping the first build's creation time."""
    now = datetime.now(timezone.utc).isoformat(timespec="milliseconds")  # orders two builds (swaps)
    return IndexManifest(
        **params,
        created=previous.created if previous else now,
        updated=now,
        corpus=corpus,
        transform=report.transform,
        index=IndexLayout(factory=report.factory, spec=settings.spec, on_disk=settings.on_disk),
        search_params=default_search_params(report.factory),
        counts=report.counts,
        bytes_per_vector=report.bytes_per_vector,
        faiss=report.faiss,
        generation=report.generation,
        trained=trained,
        calibration=calibration,
        precision=precision,
    )


def remove_old_generations(index_dir: Path, generation: int) -> None:
    """Files of generations before the previous one: no reader loads them any more (a reader keeps
    what it loaded in memory, and an on-disk lists file it mapped stays readable once unlinked; one
    opening the previous generation right now still finds it)."""
    manifest = IndexManifest.read(index_dir)
    keep = {manifest.transform.file}
    for path in index_dir.iterdir():
        found = re.fullmatch(r"(?:index-(\d+)\.(?:faiss|ivfdata)|bm25-(\d+)|transform-(\d+)\.pca)", path.name)
        if not found or path.name in keep:
            continue
        g = int(next(x for x in found.groups() if x))
        if g < generation - 1 or (path.suffix == ".pca" and g < manifest.trained.generation):
            shutil.rmtree(path) if path.is_dir() else path.unlink()
