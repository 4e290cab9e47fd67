"""`ragkit index`: build or update an index of a folder, or upsert a JSON lines stream."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ragkit.cli.options import (
    AllowUnvalidated,
    AttnImplementation,
    Causal,
    Device,
    Devices,
    Dtype,
    IndexDir,
    InputFormat,
    MaxLength,
    Model,
    Pooling,
    Precision,
    Template,
    console,
    errors,
    runtime,
    vector_shape,
)
from ragkit.encoders.loading import DEFAULT_ENCODER
from ragkit.errors import RagkitError


def index(
    corpus: Annotated[Path | None, typer.Argument(help="Folder (or file) of documents.")] = None,
    index_dir: IndexDir = Path("ragkit-index"),
    jsonl: Annotated[
        Path | None,
        typer.Option(
            help="JSON lines of documents (id, text, title, other fields as metadata) to upsert by id."
        ),
    ] = None,
    model: Model = DEFAULT_ENCODER,
    spec: Annotated[
        str | None,
        typer.Option(
            help="flat, ivf, hnsw, ivfpq, sq8, sqfp16 or a faiss factory string (default: by size)."
        ),
    ] = None,
    pca: Annotated[int | None, typer.Option(help="Reduce vectors to this many dims with PCA.")] = None,
    whiten: Annotated[bool, typer.Option(help="Whiten with the PCA.")] = False,
    dim: Annotated[int | None, typer.Option(help="Keep only the first DIM dims (truncation).")] = None,
    on_disk: Annotated[
        bool,
        typer.Option(
            help="Keep the IVF index's inverted lists in a memory-mapped file, for vectors past RAM "
            "(spec: ivf unless given)."
        ),
    ] = False,
    chunk_size: Annotated[int, typer.Option(help="Tokens per chunk.")] = 256,
    overlap: Annotated[int, typer.Option(help="Tokens shared by neighbouring chunks.")] = 32,
    text_field: Annotated[str, typer.Option(help="JSON / CSV field holding the text.")] = "text",
    title_field: Annotated[str, typer.Option(help="JSON / CSV field holding the title.")] = "title",
    id_field: Annotated[str | None, typer.Option(help="JSON / CSV field holding the id.")] = None,
    document_instruction: Annotated[str | None, typer.Option(help="Instruction for documents.")] = None,
    query_instruction: Annotated[str | None, typer.Option(help="Instruction stored for queries.")] = None,
    pooling: Pooling = None,
    causal: Causal = False,
    max_length: MaxLength = None,
    input_format: InputFormat = None,
    template: Template = None,
    rebuild: Annotated[bool, typer.Option(help="Embed everything again, replacing the index.")] = False,
    batch_size: Annotated[int, typer.Option(min=1)] = 32,
    device: Device = None,
    dtype: Dtype = None,
    precision: Precision = None,
    attn_implementation: AttnImplementation = None,
    allow_unvalidated: AllowUnvalidated = False,
    devices: Devices = None,
    ray: Annotated[
        str | None,
        typer.Option(
            help="Read, chunk and embed on a Ray cluster: auto (the running one), local (a new local "
            "instance) or an address such as ray://head:10001. Needs ragkit\\[ray].",
        ),
    ] = None,
    ray_actors: Annotated[
        int | None, typer.Option(min=1, help="Encoder actors on Ray (default: one per GPU, else 2).")
    ] = None,
    calibrate: Annotated[
        bool,
        typer.Option(
            help="Choose the index's default search (dense, BM25 or a fusion) from pseudo-queries made "
            "from the corpus; off: the fallback chosen on dev splits.",
        ),
    ] = True,
    calibration_queries: Annotated[
        str | None,
        typer.Option(
            help="How the calibration's pseudo-queries are made: generated (questions SmolLM2-135M-Instruct "
            "writes for 200 chunks, cached per chunk; about a minute on 2 CPU cores) or inverse-cloze "
            "(sentences of the chunks, no generator). Default: as the index's last calibration, else "
            "generated.",
        ),
    ] = None,
) -> None:
    """Build or update a FAISS index of a folder (only new or changed files are embedded), or upsert
    the documents of a JSON lines stream by id (--jsonl)."""
    from ragkit import Encoder
    from ragkit.corpus import check_corpus_path
    from ragkit.index import ChunkingConfig, Fields, Index
    from ragkit.index.calibration import check_query_method
    from ragkit.index.lock import writer_lock
    from ragkit.index.manifest import MANIFEST_FILE
    from ragkit.index.settings import IndexSettings
    from ragkit.index.workdir import index_path

    source = corpus or jsonl  # the folder or the JSON lines file
    if source is None or (corpus is not None and jsonl is not None):
        raise RagkitError("give a corpus folder or --jsonl FILE (one of the two)")
    if ray is not None and jsonl is not None:
        raise RagkitError("--ray embeds a corpus folder; --jsonl streams are upserted locally")
    check_corpus_path(source)  # a wrong path or option fails now, not after seconds of model loading
    IndexSettings(spec, pca, dim, whiten, on_disk).check()
    if calibration_queries is not None:
        check_query_method(calibration_queries)
    with writer_lock(index_path(index_dir)):  # a second writer stops now, not after loading the model
        encoder = Encoder.load(
            model,
            **vector_shape(pooling, causal, max_length, input_format, template, devices),
            **runtime(device, dtype, attn_implementation, allow_unvalidated, precision),
        )
        if document_instruction is not None:
            encoder.config.document_instruction = document_instruction
        if query_instruction is not None:
            encoder.config.query_instruction = query_instruction
        shared: dict[str, Any] = {  # what `Index.open` (an upsert) and `Index.build` (a folder) both take
            "spec": spec,
            "pca": pca,
            "dim": dim,
            "whiten": whiten,
            "on_disk": on_disk,
            "chunking": ChunkingConfig(chunk_size, overlap),
            "batch_size": batch_size,
            "calibrate": calibrate,
            "calibration_queries": calibration_queries,
        }
        fields = Fields(text_field, title_field, (id_field,) if id_field else Fields().id)
        try:
            if jsonl is not None:
                index = Index.open(index_dir, encoder, show_progress=True, **shared)
                report = index.upsert(read_records(jsonl, fields))
            else:
                report = Index.build(
                    source,
                    encoder,
                    index_dir,
                    fields=fields,
                    rebuild=rebuild,
                    ray=ray,
                    ray_actors=ray_actors,
                    **shared,
                )
        except KeyboardInterrupt:  # typer exits 130 without a word: say what was kept
            was = (
                "answers as before this run" if (index_dir / MANIFEST_FILE).is_file() else "is not built yet"
            )
            errors.print(
                f"interrupted: {index_dir} {was}; what was embedded is kept, and running the same "
                "command again resumes",
                soft_wrap=True,
                highlight=False,
            )
            raise typer.Exit(130) from None
        console.print(report.summary())


def read_records(path: Path, fields) -> list:
    """The documents of a JSON lines file, each with its id (a line without one is an error)."""
    from ragkit.corpus import ReadStats, list_files, read_documents

    stats = ReadStats()
    documents = [doc for file in list_files(path) for doc in read_documents(file, fields, stats)]
    if stats.skipped:
        raise RagkitError(f"{path}: could not read it ({', '.join(stats.skipped)}); give a .jsonl file")
    return documents
