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

import hashlib
import json
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from ragkit.corpus import CorpusFile, Document, Fields, list_files, read_documents
from ragkit.encoders import Encoder
from ragkit.errors import RagkitError
from ragkit.index.calibration import DEFAULT_QUERY_METHOD, calibrate_store, check_query_method
from ragkit.index.docstore import DOCSTORE_FILE, Docstore
from ragkit.index.documents import DOCUMENT_KEY, as_documents, document_hash, document_ids
from ragkit.index.embedding import EmbedProgress, EmbedUnit, embed_units
from ragkit.index.faiss_build import faiss_build
from ragkit.index.generation import (
    RETRAIN_FACTOR,
    generation_manifest,
    remove_old_generations,
    write_generation,
)
from ragkit.index.lock import writer_lock
from ragkit.index.manifest import MANIFEST_FILE, IndexManifest
from ragkit.index.ray_embed import embed_files_on_ray
from ragkit.index.report import BuildReport
from ragkit.index.search_setting import FALLBACK, Calibration
from ragkit.index.settings import IndexSettings
from ragkit.index.transform import Transform
from ragkit.index.workdir import (
    PARAMS_FILE,
    build_params,
    built_with,
    faiss_file_whole,
    file_hashes,
    finish_interrupted_swap,
    index_path,
    prepare_workdir,
    previous_manifest,
)
from ragkit.io import swap_into_place, write_error
from ragkit.retrieval.chunking import ChunkingConfig


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
        calibration_queries: str | None = None,
    ) -> None:
        self.index_dir, self.encoder, self.chunking, self.fields = index_dir, encoder, chunking, fields
        self.settings, self.batch_size, self.show_progress = settings, batch_size, show_progress
        self.calibrate = calibrate  # choose the default search setting from the corpus (calibration.py)
        if not calibrate and calibration_queries is not None:
            raise RagkitError(
                "`calibration_queries` says how to calibrate, but calibration is turned off; "
                "drop one of the two"
            )
        # how its pseudo-queries are made; None: as the index's last calibration, else generated
        self.calibration_queries = calibration_queries and check_query_method(calibration_queries)

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
        calibration_queries: str | None = None,
    ) -> Index:
        """An index to change document by document. An existing one keeps its encoder (loaded from
        the manifest unless given), chunking and `IndexSettings`; a new one is created by the first
        write, with `encoder` (default: the built-in encoder) and these settings."""
        index_dir = index_path(index_dir)
        settings = IndexSettings(spec, pca, dim, whiten, on_disk)
        if index_dir.exists():
            manifest = IndexManifest.read(index_dir)
            if encoder is None:
                encoder = manifest.load_encoder()
            return cls(
                index_dir,
                encoder,
                chunking=manifest.chunking,
                fields=manifest.fields,
                settings=settings.kept_for(index_dir, manifest),
                batch_size=batch_size,
                show_progress=show_progress,
                calibrate=calibrate,
                calibration_queries=calibration_queries,
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
            calibration_queries=calibration_queries,
        )

    def add(self, documents: Iterable[Document | dict]) -> BuildReport:
        """Add new documents; an id the index already holds is an error (use `upsert`)."""
        return self._update(as_documents(documents), [], add_only=True)

    def upsert(self, documents: Iterable[Document | dict]) -> BuildReport:
        """Add documents, replacing those with the same id; unchanged ones are not embedded again."""
        return self._update(as_documents(documents), [])

    def delete(self, ids: Iterable[str | int] | str | int) -> BuildReport:
        """Remove documents by id (ids the index does not hold are ignored and not counted); a
        single string (or number) is one id."""
        return self._update([], document_ids(ids))

    def _update(
        self, documents: list[Document], deletes: list[str], *, add_only: bool = False
    ) -> BuildReport:
        def change(store: Docstore, report: BuildReport, previous: IndexManifest | None) -> dict[str, str]:
            old = file_hashes(self.index_dir, previous.generation) if previous else {}  # committed
            if add_only and (held := [d.doc_id for d in documents if DOCUMENT_KEY + d.doc_id in old]):
                raise RagkitError(
                    f"the index already holds document {held[0]!r} ({len(held)} in all); "
                    "use `upsert` to replace documents"
                )
            done = store.file_hashes()  # and what an interrupted call already embedded
            todo = [d for d in documents if done.get(DOCUMENT_KEY + d.doc_id) != document_hash(d)]
            self._embed(todo, store, report)
            store.remove_files(DOCUMENT_KEY + i for i in deletes)
            if store.counts().chunks == 0:
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
        try:
            with writer_lock(self.index_dir):
                return self._change(change, kind=kind, rebuild=rebuild, corpus=corpus)
        except (OSError, RuntimeError) as e:  # a full or read-only disk: one line, and nothing lost
            kept = "the previous index is intact, and what was embedded is kept for the next run"
            if (error := write_error(e, self.index_dir, kept)) is None:
                raise
            raise error from e

    def _change(
        self,
        change: Callable[[Docstore, BuildReport, IndexManifest | None], dict[str, str]],
        *,
        kind: str,
        rebuild: bool,
        corpus: str | None,
    ) -> BuildReport:
        """`_commit`'s work, under the writer lock."""
        encoder, index_dir = self.encoder, self.index_dir
        start = time.perf_counter()
        params = build_params(encoder, self.chunking, self.fields)
        if finish_interrupted_swap(index_dir) and built_with(index_dir, params, self.settings):
            rebuild = False  # that was this rebuild, killed at the swap: what is left is an update
        previous = previous_manifest(index_dir, params, rebuild)
        report = BuildReport(index_dir, faiss=faiss_build().describe())
        base = None if rebuild else previous  # the generation an update builds on
        if base is not None:
            directory, report.generation, report.in_place = index_dir, base.generation + 1, True
        else:
            directory, report.generation = index_dir.with_name(f"{index_dir.name}.building"), 1
            prepare_workdir(directory, params)
        store = Docstore(directory / DOCSTORE_FILE, generation=report.generation)
        try:
            store.begin(kind)
            old = change(store, report, base)
            store.drop_unfinished_parts()  # of files an interrupted run began and this one did not
            _count_changes(report, old, store.file_hashes())
            lexical_whole = base is not None and (index_dir / base.lexical_path).is_dir()
            if base is not None and not lexical_whole:
                report.repaired = f"{base.lexical_path}/ (BM25) was missing: rebuilt from the docstore"
            whole = base is not None and lexical_whole and faiss_file_whole(index_dir / base.index_path)
            if base is not None and not store.has_changes() and whole:  # nothing to do, nothing to repair
                store.abandon()
                report.generation = base.generation
                report.counts = store.counts().with_vectors(base.counts.vectors)
                report.factory, report.transform = base.index.factory, base.transform
                report.seconds = time.perf_counter() - start
                return report
            trained = write_generation(
                directory,
                store,
                encoder,
                report,
                base,
                self.settings,
            )
            calibration = self._calibration(directory, store, report, base)
            if corpus is None:
                corpus = previous.corpus if previous else ""
            manifest = generation_manifest(
                params,
                previous,
                report,
                trained,
                corpus=corpus,
                settings=self.settings,
                calibration=calibration,
                precision=encoder.precision,
            )
            manifest.write(directory)  # the commit
            store.committed(keep_from=report.generation - 1)
        finally:
            store.close()
        if base is not None:
            remove_old_generations(index_dir, report.generation)
        else:
            (directory / PARAMS_FILE).unlink()
            swap_into_place(directory, index_dir)
        report.seconds = time.perf_counter() - start
        return report

    def _calibration(
        self, directory: Path, store: Docstore, report: BuildReport, previous: IndexManifest | None
    ) -> Calibration | None:
        """The generation's default search setting (None: the fallback): chosen again for a new or
        retrained index, one without a setting yet, or once the corpus has grown or shrunk
        `RETRAIN_FACTOR` times since it was chosen; else the previous one, kept."""
        kept = previous.calibration if previous else None
        fallback = f"{FALLBACK} (the fallback chosen on dev splits"
        if not self.calibrate and kept:  # not calibrated again: what the index calibrated to stays
            report.default_search = f"{kept.setting} (calibrated at {kept.chunks} chunks, kept)"
            return kept
        if not self.calibrate:
            report.default_search = f"{fallback}; not calibrated)"
            return None
        method = self.calibration_queries or (kept.method if kept else DEFAULT_QUERY_METHOD)
        n, since = report.counts.chunks, kept.chunks if kept else 0
        if (
            kept
            and kept.method == method
            and not report.retrained
            and since * RETRAIN_FACTOR > n > since / RETRAIN_FACTOR
        ):
            report.default_search = f"{kept.setting} (calibrated at {since} chunks, kept)"
            return kept
        transform = Transform.load(directory, report.transform)
        calibration = calibrate_store(
            store,
            self.encoder,
            transform,
            method=method,
            batch_size=self.batch_size,
            show_progress=self.show_progress,
        )
        if calibration is None:
            report.default_search = f"{fallback}: too few sentences to calibrate on)"
            return None
        calibration.chunks, calibration.generation = n, report.generation
        report.calibration = calibration
        report.default_search = f"{calibration.setting}, {calibration.reason()}"
        return calibration

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
        calibration_queries: str | None = None,
    ) -> BuildReport:
        """Index `corpus` (a folder or file) into `index_dir`, embedding only what changed since last time.

        `spec`, `pca`, `whiten`, `dim`, `on_disk`: how the vectors are stored (`IndexSettings`),
        chosen by the first build and kept by updates.

        `ray`: read, chunk and embed the changed files on a Ray cluster ("auto": the running one,
        "local": a new local instance, or an address), with `ray_actors` encoder actors (default:
        one per GPU, else 2); ragkit/index/ray_embed.py.

        `calibrate`: choose the index's default search setting (dense, BM25 or a fusion of them) from
        pseudo-queries made from the corpus (ragkit/index/calibration.py); False keeps the fallback
        chosen on dev splits. `calibration_queries`: how they are made, "generated" (questions
        SmolLM2-135M-Instruct writes, cached per passage) or "inverse-cloze" (sentences of the chunks:
        no generator, faster); None: as the index's last calibration, else "generated".

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
            raise RagkitError(f"no files in {corpus}: give `corpus` as a folder (or file) of documents")
        index = Index(
            index_dir,
            encoder,
            chunking=chunking or ChunkingConfig(),
            fields=fields or Fields(),
            settings=settings,
            batch_size=batch_size,
            show_progress=show_progress,
            calibrate=calibrate,
            calibration_queries=calibration_queries,
        )

        def change(store: Docstore, report: BuildReport, previous: IndexManifest | None) -> dict[str, str]:
            old = file_hashes(index_dir, previous.generation) if previous else {}  # what the index holds
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
            if store.counts().chunks == 0:
                raise RagkitError(
                    f"no text found in {corpus} ({sum(report.reading.skipped.values())} files skipped)"
                )
            return old

        corpus_path = str(Path(corpus).resolve())
        return index._commit(change, kind=f"folder:{corpus_path}", rebuild=rebuild, corpus=corpus_path)


def _count_changes(report: BuildReport, old: dict[str, str], new: dict[str, str]) -> None:
    """Files added, updated, removed and unchanged between two {path: content hash} maps."""
    report.added = len(new.keys() - old.keys())
    report.removed = len(old.keys() - new.keys())
    report.updated = sum(1 for path, h in new.items() if path in old and old[path] != h)
    report.unchanged = sum(1 for path, h in new.items() if old.get(path) == h)


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
