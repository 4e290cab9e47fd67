"""`Index.build`: corpus folder -> chunks -> vectors -> FAISS index (and a BM25 of the same chunks),
incrementally, in place and atomically.

An update writes the index's next generation into the same directory: new chunks and vectors go into
the docstore tagged with it, replaced ones are marked removed by it (readers of the current generation
see neither), the FAISS index gets the new vectors added and the old ones removed by chunk id
(`index-<g>.faiss`), the BM25 part is rebuilt (`bm25-<g>/`), and writing the manifest that names the
generation commits it. An interrupted update leaves the previous generation answering, and rerunning
the same command resumes from the files already embedded. The FAISS index and the PCA are trained
again only when the policy says so (the corpus grew or shrank `RETRAIN_FACTOR` times since they
were trained) or on `rebuild`. A new index, or a rebuild, is built in `<index>.building/` and swapped
into place when complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import faiss

from ragkit.corpus import CorpusFile, Document, Fields, ReadStats, list_files, read_documents
from ragkit.device import resolve_device
from ragkit.encoders import Encoder
from ragkit.encoders.precision import matching_precision
from ragkit.errors import RagkitError
from ragkit.index.calibration import Calibration, calibrate_store
from ragkit.index.chunking import ChunkingConfig
from ragkit.index.docstore import DOCSTORE_FILE, Docstore
from ragkit.index.embedding import EmbedProgress, EmbedTotals, EmbedUnit, embed_units
from ragkit.index.faiss_build import faiss_build
from ragkit.index.faiss_index import (
    default_search_params,
    resolve_spec,
    trained,
    training_sample_size,
    with_ids,
)
from ragkit.index.fusion import FALLBACK
from ragkit.index.lexical import SETTINGS, LexicalIndex
from ragkit.index.lock import writer_lock
from ragkit.index.manifest import MANIFEST_FILE, IndexManifest, index_file, lexical_dir
from ragkit.index.ondisk import add, disk_bytes, fill, ivfdata_file, lists_to_file, read_index
from ragkit.index.ray_embed import embed_files_on_ray
from ragkit.index.settings import IndexSettings
from ragkit.index.transform import PCA_TRAINING_SAMPLE, Transform
from ragkit.io import leftovers, swap_into_place

DOCUMENT_KEY = "doc:"  # docstore key prefix of documents added through `Index.open`, not from files
PARAMS_FILE = "build-params.json"
RETRAIN_FACTOR = 2.0  # retrain the FAISS index / PCA once the corpus has grown or shrunk this much
ADD_BLOCK = 65_536  # vectors added to FAISS at a time


@dataclass
class BuildReport:
    index_dir: Path
    added: int = 0  # files, compared with the previous index
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    resumed: int = 0  # files already embedded by an interrupted earlier run
    chunks_embedded: int = 0
    tokens_embedded: int = 0
    embed_seconds: float = 0.0
    seconds: float = 0.0  # the whole build
    reading: ReadStats = field(default_factory=ReadStats)  # files skipped, badly encoded, empty documents
    counts: dict = field(default_factory=dict)
    factory: str = ""
    transform: dict = field(default_factory=dict)
    faiss: str = ""  # which faiss build made the index
    generation: int = 0  # the index's generation after this change
    in_place: bool = False  # an update of an existing index (not a new build or a rebuild)
    vectors_added: int = 0  # FAISS vectors added and removed by an in-place update
    vectors_removed: int = 0
    retrained: str = ""  # why the FAISS index / PCA were trained (again); "" when they were kept
    bytes_per_vector: float = 0.0
    calibration: Calibration | None = None  # the default search setting, when (re)calibrated by this change
    default_search: str = ""  # a line on the default search setting after this change

    def add_embedded(self, totals: EmbedTotals) -> None:
        self.chunks_embedded += totals.chunks
        self.tokens_embedded += totals.tokens
        self.embed_seconds += totals.seconds

    def summary(self) -> str:
        c = self.counts
        lines = [
            f"index {self.index_dir}: {c['files']} files, {c['documents']} documents, {c['chunks']} chunks "
            f"({self.factory}, {self.transform['dim_out']} dims"
            + (
                f", {self.transform['kind']} from {self.transform['dim_in']}"
                if self.transform["kind"] != "none"
                else ""
            )
            + ")",
            f"files: {self.added} added, {self.updated} updated, {self.removed} removed, "
            f"{self.unchanged} unchanged"
            + (f" ({self.resumed} resumed from an interrupted build)" if self.resumed else ""),
        ]
        rate = self.tokens_embedded / self.embed_seconds if self.embed_seconds else 0.0
        lines.append(
            f"embedded {self.chunks_embedded} chunks, {self.tokens_embedded} tokens ({rate:.0f} tokens/s); "
            f"{self.seconds:.1f} s in all"
        )
        if self.in_place and not self.retrained:
            lines.append(
                f"updated in place (generation {self.generation}): {self.vectors_added} vectors added, "
                f"{self.vectors_removed} removed"
                if self.vectors_added or self.vectors_removed
                else "nothing changed: the index was left as it was"
            )
        elif self.in_place:
            lines.append(f"retrained the index (generation {self.generation}): {self.retrained}")
        reading = self.reading
        if reading.skipped:
            reasons = ", ".join(f"{n} {reason}" for reason, n in sorted(reading.skipped.items()))
            lines.append(f"skipped files: {reasons}")
        if reading.replaced_decoding:
            lines.append(
                f"{reading.replaced_decoding} files were not UTF-8: decoded with replacement characters"
            )
        if reading.empty_documents:
            lines.append(f"{reading.empty_documents} empty documents ignored")
        if self.default_search:
            lines.append(f"default search: {self.default_search}")
        lines.append(self.faiss)
        return "\n".join(lines)


class Index:
    """Builds and updates index directories; `Retriever` searches them.

    `Index.build(corpus, encoder, "my-index")` reads a folder, chunks and embeds what changed since the
    last build, and swaps the finished index in atomically (see the module docstring).
    `Index.open("my-index")` changes an index document by document: `add`, `upsert`, `delete`, each
    one atomic in the same way (a crash leaves the previous index). Both go through one transaction,
    `_commit`: lock, the change at the next generation, faiss updated in place + BM25, manifest.
    """

    def __init__(
        self,
        index_dir: Path,
        encoder: Encoder,
        *,
        chunking: ChunkingConfig,
        fields: Fields,
        settings: IndexSettings,
        batch_size: int = 32,
        show_progress: bool = False,
        calibrate: bool = True,
    ) -> None:
        self.index_dir, self.encoder, self.chunking, self.fields = index_dir, encoder, chunking, fields
        self.settings, self.batch_size, self.show_progress = settings, batch_size, show_progress
        self.calibrate = calibrate  # choose the default search setting from the corpus (calibration.py)

    @classmethod
    def open(
        cls,
        index_dir: str | Path = "ragkit-index",
        encoder: Encoder | None = None,
        *,
        chunking: ChunkingConfig | None = None,
        spec: str | None = None,
        pca: int | None = None,
        dim: int | None = None,
        whiten: bool = False,
        on_disk: bool = False,
        batch_size: int = 32,
        show_progress: bool = False,
        calibrate: bool = True,
    ) -> Index:
        """An index to change document by document. An existing one keeps its encoder (loaded from
        the manifest unless given), chunking and `IndexSettings`; a new one is created by the first
        write, with `encoder` (default: the built-in encoder) and these settings."""
        index_dir = index_path(index_dir)
        settings = IndexSettings(spec, pca, dim, whiten, on_disk)
        if index_dir.exists():
            manifest = IndexManifest.read(index_dir)
            if encoder is None:
                precision = matching_precision(manifest.precision, resolve_device(None))
                encoder = Encoder.load(manifest.encoder_config(), precision=precision)
            return cls(
                index_dir,
                encoder,
                chunking=ChunkingConfig(**manifest.chunking),
                fields=Fields(**{k: tuple(v) if k == "id" else v for k, v in manifest.fields.items()}),
                settings=settings.kept_for(index_dir, manifest),
                batch_size=batch_size,
                show_progress=show_progress,
                calibrate=calibrate,
            )
        settings.check()
        return cls(
            index_dir,
            encoder or Encoder.load(),
            chunking=chunking or ChunkingConfig(),
            fields=Fields(),
            settings=settings,
            batch_size=batch_size,
            show_progress=show_progress,
            calibrate=calibrate,
        )

    def add(self, documents: Iterable[Document | dict]) -> BuildReport:
        """Add new documents; an id the index already holds is an error (use `upsert`)."""
        return self._update(as_documents(documents), [], add_only=True)

    def upsert(self, documents: Iterable[Document | dict]) -> BuildReport:
        """Add documents, replacing those with the same id; unchanged ones are not embedded again."""
        return self._update(as_documents(documents), [])

    def delete(self, ids: Iterable[str] | str) -> BuildReport:
        """Remove documents by id (ids the index does not hold are ignored and not counted); a
        single string is one id."""
        return self._update([], [ids] if isinstance(ids, str) else [str(i) for i in ids])

    def _update(
        self, documents: list[Document], deletes: list[str], *, add_only: bool = False
    ) -> BuildReport:
        def change(store: Docstore, report: BuildReport, previous: IndexManifest | None) -> dict[str, str]:
            old = _file_hashes(self.index_dir, previous.generation) if previous else {}  # committed
            if add_only and (held := [d.doc_id for d in documents if DOCUMENT_KEY + d.doc_id in old]):
                raise RagkitError(
                    f"the index already holds document {held[0]!r} ({len(held)} in all); "
                    "use `upsert` to replace documents"
                )
            done = store.file_hashes()  # and what an interrupted call already embedded
            todo = [d for d in documents if done.get(DOCUMENT_KEY + d.doc_id) != document_hash(d)]
            self._embed(todo, store, report)
            store.remove_files(DOCUMENT_KEY + i for i in deletes)
            if store.counts()["chunks"] == 0:
                raise RagkitError(
                    f"this would leave {self.index_dir} without documents; remove the directory instead"
                )
            return old

        # The call's own content names its pending change: rerunning a killed call resumes it, and a
        # different call rolls the dead one's uncommitted rows back instead of committing them too.
        call = json.dumps(
            [sorted((d.doc_id, document_hash(d)) for d in documents), sorted(deletes), add_only]
        )
        return self._commit(change, kind=f"documents:{hashlib.sha256(call.encode()).hexdigest()[:16]}")

    def _commit(
        self,
        change: Callable[[Docstore, BuildReport, IndexManifest | None], dict[str, str]],
        *,
        kind: str,
        rebuild: bool = False,
        corpus: str | None = None,
    ) -> BuildReport:
        """One atomic change of the index, for the folder build and the document API alike.

        Under the writer lock, `change` edits the docstore at the next generation (embedding what it
        adds) and returns the {key: hash} map the index held before; the FAISS index is then updated
        in place (or trained again, by the policy) and the BM25 part rebuilt, and the manifest naming
        the generation commits it. A new index or a rebuild is made in `<index>.building/` and swapped
        in. `kind` names the change ("folder:<path>", or "documents:<digest of the call>"): an
        interrupted change of the same kind is resumed, another kind's is rolled back first.
        """
        encoder, index_dir = self.encoder, self.index_dir
        with writer_lock(index_dir):
            if finish_interrupted_swap(index_dir):
                rebuild = False  # that was this rebuild, killed at the swap: what is left is an update
            start = time.perf_counter()
            params = _build_params(encoder, self.chunking, self.fields)
            previous = _previous_manifest(index_dir, params, rebuild)
            report = BuildReport(index_dir, faiss=faiss_build().describe())
            in_place = previous is not None and not rebuild
            if in_place:
                directory, report.generation, report.in_place = index_dir, previous.generation + 1, True
            else:
                directory, report.generation = index_dir.with_name(f"{index_dir.name}.building"), 1
                _prepare_workdir(directory, params, resume=not rebuild)
            store = Docstore(directory / DOCSTORE_FILE, generation=report.generation)
            try:
                store.begin(kind)
                old = change(store, report, previous if in_place else None)
                _count_changes(report, old, store.file_hashes())
                bm25_there = previous is not None and (index_dir / previous.lexical_path).is_dir()
                if in_place and not store.has_changes() and bm25_there:
                    store.abandon()
                    report.generation, report.counts = previous.generation, store.counts()
                    report.factory, report.transform = previous.index["factory"], previous.transform
                    report.counts["vectors"] = previous.counts.get("vectors", report.counts["chunks"])
                    report.seconds = time.perf_counter() - start
                    return report
                trained_info = _write_generation(
                    directory,
                    store,
                    encoder,
                    report,
                    previous if in_place else None,
                    self.settings,
                )
                calibration = self._calibration(directory, store, report, previous if in_place else None)
                if corpus is None:
                    corpus = previous.corpus if previous else ""
                manifest = _manifest(
                    params,
                    previous,
                    report,
                    trained_info,
                    corpus=corpus,
                    settings=self.settings,
                    calibration=calibration,
                    precision=encoder.precision,
                )
                manifest.write(directory)  # the commit
                store.committed(keep_from=report.generation - 1)
            finally:
                store.close()
            if in_place:
                _remove_old_generations(index_dir, report.generation)
            else:
                (directory / PARAMS_FILE).unlink()
                swap_into_place(directory, index_dir)
            report.seconds = time.perf_counter() - start
            return report

    def _calibration(
        self, directory: Path, store: Docstore, report: BuildReport, previous: IndexManifest | None
    ) -> dict:
        """The generation's default search setting (`Calibration.to_json()`; {} for none): chosen
        again for a new or retrained index, one without a setting yet, or once the corpus has grown or
        shrunk `RETRAIN_FACTOR` times since it was chosen; else the previous one, kept."""
        kept = previous.calibration if previous else {}
        fallback = f"{FALLBACK} (the fallback chosen on dev splits"
        if not self.calibrate:
            report.default_search = f"{fallback}; not calibrated)"
            return {}
        n, since = report.counts["chunks"], kept.get("chunks", 0)
        if kept and not report.retrained and since * RETRAIN_FACTOR > n and n * RETRAIN_FACTOR > since:
            setting = Calibration.from_json(kept).setting
            report.default_search = f"{setting} (calibrated at {since} chunks, kept)"
            return kept
        transform = Transform.load(directory, report.transform)
        calibration = calibrate_store(store, self.encoder, transform, batch_size=self.batch_size)
        if calibration is None:
            report.default_search = f"{fallback}: too few sentences to calibrate on)"
            return {}
        calibration.chunks, calibration.generation = n, report.generation
        report.calibration = calibration
        report.default_search = f"{calibration.setting}, {calibration.reason()}"
        return calibration.to_json()

    def _embed(self, documents: list[Document], store: Docstore, report: BuildReport) -> None:
        units = (
            EmbedUnit(DOCUMENT_KEY + d.doc_id, document_hash(d), [d], remove_if_empty=False)
            for d in documents
        )
        with EmbedProgress("documents", len(documents), self.show_progress) as progress:
            totals = embed_units(units, self.encoder, store, self.chunking, progress, self.batch_size)
        report.add_embedded(totals)

    @staticmethod
    def build(
        corpus: str | Path,
        encoder: Encoder,
        index_dir: str | Path = "ragkit-index",
        *,
        spec: str | None = None,
        pca: int | None = None,
        whiten: bool = False,
        dim: int | None = None,
        on_disk: bool = False,
        chunking: ChunkingConfig | None = None,
        fields: Fields | None = None,
        rebuild: bool = False,
        batch_size: int = 32,
        show_progress: bool = True,
        ray: str | None = None,
        ray_actors: int | None = None,
        calibrate: bool = True,
    ) -> BuildReport:
        """Index `corpus` (a folder or file) into `index_dir`, embedding only what changed since last time.

        `spec`, `pca`, `whiten`, `dim`, `on_disk`: how the vectors are stored (`IndexSettings`),
        chosen by the first build and kept by updates.

        `ray`: read, chunk and embed the files to embed on a Ray cluster ("auto": the running one,
        "local": a new local instance, or an address), with `ray_actors` encoder actors (default:
        one per GPU, else 2); ragkit/index/ray_embed.py.

        `calibrate`: choose the index's default search setting (dense, BM25 or a fusion of them) from
        pseudo-queries drawn from the corpus (ragkit/index/calibration.py); False keeps the fallback
        chosen on dev splits.

        One writer at a time: a second build of the same `index_dir` raises a one-line `RagkitError`
        naming the first one's PID, while searches of the current index go on.
        """
        index_dir = index_path(index_dir)
        settings = IndexSettings(spec, pca, dim, whiten, on_disk)
        if not rebuild and (index_dir / MANIFEST_FILE).is_file():  # an update keeps what was chosen
            settings = settings.kept_for(index_dir, IndexManifest.read(index_dir))
        settings.check(encoder.dim)
        files = list_files(Path(corpus))
        if not files:
            raise RagkitError(f"no files in {corpus}: point ragkit index at a folder of documents")
        index = Index(
            index_dir,
            encoder,
            chunking=chunking or ChunkingConfig(),
            fields=fields or Fields(),
            settings=settings,
            batch_size=batch_size,
            show_progress=show_progress,
            calibrate=calibrate,
        )

        def change(store: Docstore, report: BuildReport, previous: IndexManifest | None) -> dict[str, str]:
            old = _file_hashes(index_dir, previous.generation) if previous else {}  # what the index holds
            done = store.file_hashes()  # that, plus what an interrupted build already embedded
            report.resumed = sum(done.get(f.relpath) == f.content_hash != old.get(f.relpath) for f in files)
            todo = [f for f in files if done.get(f.relpath) != f.content_hash]
            if ray is not None and todo:
                started = time.perf_counter()
                report.chunks_embedded, report.tokens_embedded = embed_files_on_ray(
                    todo,
                    encoder,
                    store,
                    chunking=index.chunking,
                    fields=index.fields,
                    stats=report.reading,
                    address=ray,
                    actors=ray_actors,
                    batch_size=batch_size,
                    shard_dir=index_dir.with_name(f"{index_dir.name}.ray-shards"),
                )
                report.embed_seconds = time.perf_counter() - started
            else:
                _embed_files(
                    todo, encoder, store, index.chunking, index.fields, report, batch_size, show_progress
                )
            # Files gone from the folder leave; documents added through `Index.open` stay.
            current = {f.relpath for f in files}
            store.remove_files({p for p in done if not p.startswith(DOCUMENT_KEY)} - current)
            if store.counts()["chunks"] == 0:
                raise RagkitError(
                    f"no text found in {corpus} ({sum(report.reading.skipped.values())} files skipped)"
                )
            return old

        corpus_path = str(Path(corpus).resolve())
        return index._commit(change, kind=f"folder:{corpus_path}", rebuild=rebuild, corpus=corpus_path)


def _build_params(encoder: Encoder, chunking: ChunkingConfig, fields: Fields) -> dict:
    """What makes an index what it is, as the manifest holds it (tuples become lists): a build or
    update with other params than the existing index's is refused."""
    params = {"encoder": encoder.fingerprint(), "chunking": asdict(chunking), "fields": asdict(fields)}
    return json.loads(json.dumps(params))


def index_path(index_dir: str | Path) -> Path:
    """The index's folder; the current or parent folder itself is refused (an index is swapped into
    place as a whole, beside its siblings, so it needs a folder of its own)."""
    path = Path(index_dir)
    if path.name in ("", ".", ".."):
        raise RagkitError(
            f"`index_dir` {str(index_dir)!r} is not a folder of its own; name one, e.g. 'ragkit-index'"
        )
    return path


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
    payload = json.dumps([doc.title, doc.text, doc.metadata], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _write_generation(
    directory: Path,
    store: Docstore,
    encoder: Encoder,
    report: BuildReport,
    previous: IndexManifest | None,
    settings: IndexSettings,
) -> dict[str, int]:
    """The FAISS index and BM25 part of the store's generation, beside the previous ones; returns
    when the FAISS index / PCA were trained ({"generation", "vectors"})."""
    g, n = report.generation, store.counts()["chunks"]
    lists_file = directory / ivfdata_file(g) if settings.on_disk else None
    added, vectors, removed = store.changes(encoder.dim) if previous else (None, None, None)
    reason = "new index" if previous is None else _retrain_reason(previous, n, len(removed) > 0)
    if reason:
        transform, factory, index = _train_and_fill(store, encoder.dim, n, settings, lists_file)
        pca_file = f"transform-{g}.pca"
        transform.save(directory, pca_file)
        report.transform, report.factory = transform.describe(pca_file), factory
        report.retrained = "" if previous is None else reason
        trained_info = {"generation": g, "vectors": n}
    else:
        index = read_index(directory / previous.index_path)
        if lists_file:  # the previous generation's lists stay as its readers mapped them
            lists_to_file(index, lists_file)
        transform = Transform.load(directory, previous.transform)
        if len(removed):
            index.remove_ids(removed)
        for first in range(0, len(added), ADD_BLOCK):
            block = slice(first, first + ADD_BLOCK)
            add(index, transform.apply(vectors[block]), added[block])
        report.vectors_added, report.vectors_removed = len(added), len(removed)
        report.transform, report.factory = previous.transform, previous.index["factory"]
        trained_info = previous.trained
    faiss.write_index(index, str(directory / index_file(g)))
    ids, texts = store.texts()
    LexicalIndex.build(texts, ids=ids).save(directory / lexical_dir(g))
    report.counts = store.counts()
    report.counts["vectors"] = int(index.ntotal)
    size = (directory / index_file(g)).stat().st_size + (disk_bytes(lists_file) if lists_file else 0)
    report.bytes_per_vector = round(size / max(index.ntotal, 1), 1)
    return trained_info


def _retrain_reason(previous: IndexManifest, n: int, removing: bool) -> str:
    """Why an update must train the FAISS index / PCA again; "" when it can update them in place."""
    factory, trained_on = previous.index["factory"], previous.trained.get("vectors", n)
    learned = previous.transform["kind"] == "pca" or re.search(r"IVF|PQ|SQ", factory)
    if learned and (n >= RETRAIN_FACTOR * trained_on or n * RETRAIN_FACTOR <= trained_on):
        return f"it has {n} chunks, {n / max(trained_on, 1):.1f}x the {trained_on} it was trained on"
    if removing and "HNSW" in factory:
        return "an HNSW graph cannot remove vectors in place"
    return ""


def _train_and_fill(
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


def _manifest(
    params: dict,
    previous: IndexManifest | None,
    report: BuildReport,
    trained_info: dict[str, int],
    *,
    corpus: str,
    settings: IndexSettings,
    calibration: dict,
    precision: str,
) -> IndexManifest:
    now = datetime.now(timezone.utc).isoformat(timespec="milliseconds")  # orders two builds (swaps)
    return IndexManifest(
        **params,
        created=previous.created if previous else now,
        updated=now,
        corpus=corpus,
        transform=report.transform,
        index={
            "spec": settings.spec,
            "factory": report.factory,
            "metric": "inner_product",
            "on_disk": settings.on_disk,
        },
        search_params=default_search_params(report.factory),
        lexical=SETTINGS,
        counts=dict(report.counts),
        bytes_per_vector=report.bytes_per_vector,
        faiss=report.faiss,
        generation=report.generation,
        trained=trained_info,
        calibration=calibration,
        precision=precision,
    )


def _remove_old_generations(index_dir: Path, generation: int) -> None:
    """Files of generations before the previous one: no reader loads them any more (a reader keeps
    what it loaded in memory, and an on-disk lists file it mapped stays readable once unlinked; one
    opening the previous generation right now still finds it)."""
    manifest = IndexManifest.read(index_dir)
    keep = {manifest.transform.get("file")}
    for path in index_dir.iterdir():
        found = re.fullmatch(r"(?:index-(\d+)\.(?:faiss|ivfdata)|bm25-(\d+)|transform-(\d+)\.pca)", path.name)
        if not found or path.name in keep:
            continue
        g = int(next(x for x in found.groups() if x))
        if g < generation - 1 or (path.suffix == ".pca" and g < manifest.trained.get("generation", 0)):
            shutil.rmtree(path) if path.is_dir() else path.unlink()


def _count_changes(report: BuildReport, old: dict[str, str], new: dict[str, str]) -> None:
    """Files added, updated, removed and unchanged between two {path: content hash} maps."""
    report.added = len(new.keys() - old.keys())
    report.removed = len(old.keys() - new.keys())
    report.updated = sum(1 for path, h in new.items() if path in old and old[path] != h)
    report.unchanged = sum(1 for path, h in new.items() if old.get(path) == h)


def _previous_manifest(index_dir: Path, params: dict, rebuild: bool) -> IndexManifest | None:
    """The existing index's manifest, after checking that it was made the same way."""
    if not index_dir.exists():
        return None
    if rebuild:  # only its creation date matters, and a corrupt index is what --rebuild is for
        try:
            return IndexManifest.read(index_dir)
        except RagkitError:
            return None
    manifest = IndexManifest.read(index_dir)
    was, now = manifest.encoder, params["encoder"]
    if was["config_hash"] != now["config_hash"]:
        raise RagkitError(
            f"{index_dir} was built with encoder {was['source']!r} ({was['config_hash']}), not "
            f"{now['source']!r} ({now['config_hash']}); use that encoder, another `index_dir`, or `rebuild`"
        )
    if manifest.chunking != params["chunking"] or manifest.fields != params["fields"]:
        raise RagkitError(f"{index_dir} was built with other chunking or fields settings; use `rebuild`")
    _check_parts(index_dir, manifest)
    return manifest


def _check_parts(index_dir: Path, manifest: IndexManifest) -> None:
    """Before an update embeds anything: the parts it cannot do without are there and look whole.
    (A missing BM25 part is rebuilt by the update itself.)"""
    if not (index_dir / DOCSTORE_FILE).is_file():
        raise RagkitError(
            f"{index_dir / DOCSTORE_FILE} is missing, so the index cannot be updated (its texts and vectors "
            "were there); build it again with `rebuild`"
        )
    faiss_file = index_dir / manifest.index_path
    with contextlib.suppress(OSError), faiss_file.open("rb") as f:
        if f.read(1) == b"I":  # every faiss index file starts with its type's fourcc, "I..."
            return
    raise RagkitError(f"{faiss_file} is damaged or missing; build the index again with `rebuild`")


def finish_interrupted_swap(index_dir: Path) -> bool:
    """Put right what a kill during a swap left (the writer lock held): a finished new build in
    `<index>.building/` that never went in goes in (True); an old index the exchange moved out, or
    `<index>.old-PID/` copies, go away; an index a two-rename swap left missing comes back."""
    building = index_dir.with_name(f"{index_dir.name}.building")
    finished = (building / MANIFEST_FILE).is_file() and not (building / PARAMS_FILE).exists()
    swapped = finished and (
        not index_dir.exists() or IndexManifest.read(building).updated > IndexManifest.read(index_dir).updated
    )
    if swapped:
        swap_into_place(building, index_dir)  # the build was done; only the swap was not
    elif finished:
        shutil.rmtree(building)  # the old index, moved out by the exchange before the kill
    old = leftovers(index_dir)
    if old and not index_dir.exists():
        old[-1].rename(index_dir)  # two renames, killed between them: the old index comes back
    for path in leftovers(index_dir):
        shutil.rmtree(path, ignore_errors=True)
    return swapped


def _prepare_workdir(work: Path, params: dict, *, resume: bool) -> None:
    """Resume an interrupted new build made the same way, else start afresh."""
    params_file = work / PARAMS_FILE
    if resume and params_file.is_file() and json.loads(params_file.read_text()) == params:
        return
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    params_file.write_text(json.dumps(params))


def _file_hashes(index_dir: Path, generation: int) -> dict[str, str]:
    """What generation `generation` of the index holds: {path: content hash}."""
    store = Docstore(index_dir / DOCSTORE_FILE, generation=generation, readonly=True)
    try:
        return store.file_hashes()
    finally:
        store.close()


def _embed_files(
    files: list[CorpusFile],
    encoder: Encoder,
    store: Docstore,
    chunking: ChunkingConfig,
    fields: Fields,
    report: BuildReport,
    batch_size: int,
    show_progress: bool,
) -> None:
    """Read, chunk and embed `files`, committing each file's chunks and vectors as a unit."""
    with EmbedProgress("files", len(files), show_progress) as progress:

        def units():
            for file in files:
                documents = read_documents(file, fields, report.reading)
                if len(files) == 1:  # one large JSON lines / BEIR file: count its documents
                    progress.count_documents(len(documents))
                yield EmbedUnit(file.relpath, file.content_hash, documents)

        totals = embed_units(units(), encoder, store, chunking, progress, batch_size)
    report.add_embedded(totals)
