"""`ragkit` command line. Each command parses options, calls the Python API, and prints."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ragkit.encoders.loading import DEFAULT_ENCODER
from ragkit.errors import RagkitError, for_flags
from ragkit.index.fusion import DEFAULT_METHOD, DEFAULT_WEIGHT
from ragkit.index.rerank import RERANK_TOP

app = typer.Typer(
    help="Decoder LLMs as text encoders (LLM2Vec), and retrieval on top of them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
# Redirected to a file, tables keep their natural width instead of rich's default 80 columns.
console = Console(width=None if sys.stdout.isatty() else 240)
errors = Console(stderr=True)

Model = Annotated[
    str, typer.Option("--model", "-m", help="Built-in name, Hugging Face id, model directory or .gguf file.")
]
Device = Annotated[str | None, typer.Option(help="cpu, cuda or cuda:N (default: cuda if available).")]
Pooling = Annotated[str | None, typer.Option(help="mean, weighted_mean, last_token or eos_token.")]
Causal = Annotated[bool, typer.Option("--causal", help="Keep the causal mask (no LLM2Vec step 1).")]
Dtype = Annotated[
    str | None, typer.Option(help="float32, bfloat16, ... (default: fp32 on CPU, bf16 on GPU).")
]
MaxLength = Annotated[int | None, typer.Option(min=2, help="Tokens per text; longer texts are truncated.")]
AttnImplementation = Annotated[str | None, typer.Option(help="sdpa (default), eager or flash_attention_2.")]
Precision = Annotated[
    str | None,
    typer.Option(
        help="fp32, bf16 or int8 (CPU only): how the encoder computes (default: bf16 where the "
        "hardware computes it, else fp32; an index's queries: as its documents; "
        "benchmarks/results/cpu_precision.md)."
    ),
]
Devices = Annotated[
    str | None,
    typer.Option(
        help="Encode on several devices at once, a worker process each: all (every GPU), "
        "cuda:0,cuda:1 or cpu,cpu."
    ),
]
Rerank = Annotated[
    str | None,
    typer.Option(
        help="Reorder the top hits with this sentence-transformers CrossEncoder (a directory or Hub "
        "id); needs ragkit\\[rerank].",
    ),
]
AllowUnvalidated = Annotated[
    bool, typer.Option(help="Use a model type whose bidirectional attention is not validated here.")
]
InputFormat = Annotated[
    str | None,
    typer.Option(
        help="ragkit, or llm2vec: texts formatted as the reference llm2vec does (the default for "
        "published LLM2Vec checkpoints)."
    ),
]
Template = Annotated[
    str | None,
    typer.Option(
        help="Prompt around each text: llama-3-instruct, qwen2-instruct, ... or a string with {text}."
    ),
]


def _print_version(value: bool) -> None:
    if value:
        from ragkit import __version__

        console.print(f"ragkit {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool | None,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = None,
) -> None:
    """Decoder LLMs as text encoders (LLM2Vec), and retrieval on top of them."""


def runtime(
    device: str | None,
    dtype: str | None,
    attn_implementation: str | None,
    allow_unvalidated: bool,
    precision: str | None = None,
) -> dict:
    """How to run a model whatever vectors it gives: the options `Encoder.load` and `Retriever.load`
    share (an index fixes everything else)."""
    return {
        "device": device,
        "dtype": dtype,
        "attn_implementation": attn_implementation,
        "allow_unvalidated": allow_unvalidated,
        "precision": precision,
    }


def vector_shape(
    pooling: str | None,
    causal: bool,
    max_length: int | None,
    input_format: str | None,
    template: str | None,
    devices: str | None,
) -> dict:
    """What shapes the vectors (and where they are computed): the options `embed`, `index` and
    `eval` pass to `Encoder.load` beside `runtime`'s."""
    return {
        "pooling": pooling,
        "bidirectional": False if causal else None,
        "max_length": max_length,
        "input_format": input_format,
        "template": template,
        "devices": devices,
    }


@app.command()
def embed(
    texts: Annotated[list[str] | None, typer.Argument(help="Texts to embed.")] = None,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="Also embed each line of this file.")
    ] = None,
    model: Model = DEFAULT_ENCODER,
    instruction: Annotated[str | None, typer.Option(help="Attended to but not pooled.")] = None,
    as_query: Annotated[
        bool,
        typer.Option("--query", help="Embed the texts as queries, with the encoder's query instruction."),
    ] = False,
    pooling: Pooling = None,
    causal: Causal = False,
    max_length: MaxLength = None,
    input_format: InputFormat = None,
    template: Template = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 32,
    out: Annotated[Path | None, typer.Option(help="Save the (n, dim) float32 matrix as .npy.")] = None,
    device: Device = None,
    dtype: Dtype = None,
    precision: Precision = None,
    attn_implementation: AttnImplementation = None,
    allow_unvalidated: AllowUnvalidated = False,
    devices: Devices = None,
) -> None:
    """Embed texts and print their cosine-similarity matrix."""
    import numpy as np

    from ragkit import Encoder
    from ragkit.corpus import read_lines

    texts = list(texts or [])
    if file is not None:
        if not file.exists():
            raise RagkitError(f"--file {file} does not exist")
        texts += read_lines(file)  # as `ragkit index` reads files: a binary one is refused
    if not texts:
        raise RagkitError("nothing to embed: give texts as arguments or --file with one text per line")

    encoder = Encoder.load(
        model,
        **vector_shape(pooling, causal, max_length, input_format, template, devices),
        **runtime(device, dtype, attn_implementation, allow_unvalidated, precision),
    )
    start = time.perf_counter()
    if as_query and instruction is None:
        instruction = encoder.config.query_instruction
    vectors = encoder.encode(texts, instruction=instruction, batch_size=batch_size)
    seconds = time.perf_counter() - start

    if len(texts) <= 12:
        console.print(similarity_table(texts, vectors @ vectors.T))
    if out is not None:
        np.save(out, vectors)
        console.print(f"saved {out}")
    console.print(
        f"{encoder!r}\nembedded {len(texts)} texts into {vectors.shape[1]} dims in {seconds:.2f} s "
        f"({len(texts) / seconds:.1f} texts/s)"
    )


def similarity_table(texts: list[str], sims) -> Table:
    table = Table(title="cosine similarity", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("text", max_width=48, no_wrap=True)
    for j in range(len(texts)):
        table.add_column(str(j), justify="right")
    for i, text in enumerate(texts):
        cells = [f"[bold]{v:.2f}[/]" if i == j else f"{v:.2f}" for j, v in enumerate(sims[i])]
        table.add_row(str(i), text, *cells)
    return table


IndexDir = Annotated[Path, typer.Option("--index", "-i", help="Index directory.")]


@app.command()
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
            help="Choose the index's default search (dense, BM25 or a fusion) from pseudo-queries drawn "
            "from the corpus; off: the fallback chosen on dev splits.",
        ),
    ] = True,
) -> None:
    """Build or update a FAISS index of a folder (only new or changed files are embedded), or upsert
    the documents of a JSON lines stream by id (--jsonl)."""
    from ragkit import Encoder
    from ragkit.corpus import check_corpus_path
    from ragkit.index import ChunkingConfig, Fields, Index
    from ragkit.index.build import index_path
    from ragkit.index.lock import writer_lock
    from ragkit.index.settings import IndexSettings

    if (corpus is None) == (jsonl is None):
        raise RagkitError("give a corpus folder or --jsonl FILE (one of the two)")
    if ray is not None and jsonl is not None:
        raise RagkitError("--ray embeds a corpus folder; --jsonl streams are upserted locally")
    check_corpus_path(corpus or jsonl)  # a wrong path or option fails now, not after seconds of model loading
    IndexSettings(spec, pca, dim, whiten, on_disk).check()
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
        fields = Fields(text_field, title_field, (id_field,) if id_field else Fields().id)
        if jsonl is not None:
            report = Index.open(
                index_dir,
                encoder,
                chunking=ChunkingConfig(chunk_size, overlap),
                spec=spec,
                pca=pca,
                dim=dim,
                whiten=whiten,
                on_disk=on_disk,
                batch_size=batch_size,
                show_progress=True,
                calibrate=calibrate,
            ).upsert(read_records(jsonl, fields))
            console.print(report.summary())
            return
        report = Index.build(
            corpus,
            encoder,
            index_dir,
            spec=spec,
            pca=pca,
            whiten=whiten,
            dim=dim,
            on_disk=on_disk,
            chunking=ChunkingConfig(chunk_size, overlap),
            fields=fields,
            rebuild=rebuild,
            batch_size=batch_size,
            ray=ray,
            ray_actors=ray_actors,
            calibrate=calibrate,
        )
        console.print(report.summary())


def read_records(path: Path, fields) -> list:
    """The documents of a JSON lines file, each with its id (a line without one is an error)."""
    from ragkit.corpus import ReadStats, list_files, read_documents

    stats = ReadStats()
    documents = [doc for file in list_files(path) for doc in read_documents(file, fields, stats)]
    if stats.skipped:
        raise RagkitError(f"{path}: could not read it ({', '.join(stats.skipped)}); give a .jsonl file")
    return documents


@app.command()
def query(
    text: Annotated[str, typer.Argument(help="What to search for.")],
    index_dir: IndexDir = Path("ragkit-index"),
    k: Annotated[int, typer.Option("-k", min=1, help="Number of results.")] = 10,
    filter: Annotated[
        list[str] | None, typer.Option("--filter", help="KEY=GLOB on path or a metadata field; repeatable.")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    mode: Annotated[
        str | None,
        typer.Option(
            help="dense, bm25 or hybrid (both, fused). Default: the setting the index calibrated itself "
            "to when it was built (printed with the results)."
        ),
    ] = None,
    method: Annotated[
        str | None,
        typer.Option(
            "--fusion",
            help=f"How hybrid fuses: weighted (min-max scores) or rrf (ranks). Default: the index's "
            f"calibrated one, else {DEFAULT_METHOD}.",
        ),
    ] = None,
    weight: Annotated[
        float | None,
        typer.Option(
            help=f"Hybrid's dense share, 0 to 1. Default: the index's calibrated one, "
            f"else {DEFAULT_WEIGHT:g}."
        ),
    ] = None,
    rerank: Rerank = None,
    rerank_top: Annotated[
        int, typer.Option(min=1, help="How many of the search's top hits --rerank reads.")
    ] = RERANK_TOP,
    device: Device = None,
    dtype: Dtype = None,
    precision: Precision = None,
    attn_implementation: AttnImplementation = None,
    allow_unvalidated: AllowUnvalidated = False,
) -> None:
    """Search an index and print the best chunks.

    The index's encoder is loaded as it was built (format, instructions, max length included)."""
    from dataclasses import asdict

    from ragkit.index import Retriever

    conditions = {}
    for item in filter or []:
        key, sep, pattern = item.partition("=")
        if not sep or not key:
            raise RagkitError(f"--filter {item!r} is not KEY=GLOB, e.g. --filter 'path=docs/*.md'")
        conditions[key] = pattern
    retriever = Retriever.load(
        index_dir,
        **runtime(device, dtype, attn_implementation, allow_unvalidated, precision),
    )
    setting = retriever.resolve(mode, method, weight)
    hits = retriever.search(
        text,
        k=k,
        filter=conditions,
        mode=setting.mode,
        method=setting.method,
        weight=setting.weight,
        rerank=rerank,
        rerank_top=rerank_top,
    )
    if json_output:
        print(json.dumps([asdict(h) for h in hits], ensure_ascii=False, indent=2))
        return
    table = Table(title=f"top {len(hits)} for {text!r}", title_justify="left")
    table.add_column("rank", justify="right")
    table.add_column("score", justify="right")
    table.add_column("source", max_width=32)
    table.add_column("snippet", max_width=80)
    for rank, hit in enumerate(hits, 1):
        source = hit.path if hit.doc_id == hit.path else f"{hit.path} [{hit.doc_id}]"
        snippet = " ".join(hit.text.split())
        table.add_row(
            str(rank), f"{hit.score:.3f}", source, snippet[:200] + ("…" if len(snippet) > 200 else "")
        )
    console.print(table)
    reranked = f"; reranked the top {rerank_top} with {rerank}" if rerank else ""
    console.print(f"[dim]search: {setting}; {retriever.explain(setting)}{reranked}[/]", highlight=False)


@app.command()
def export(
    directory: Annotated[Path, typer.Argument(help="Where to write the exported model.")],
    model: Model = DEFAULT_ENCODER,
    format: Annotated[str, typer.Option("--format", help="sentence-transformers.")] = "sentence-transformers",
    device: Device = None,
    dtype: Dtype = None,
    allow_unvalidated: AllowUnvalidated = False,
) -> None:
    """Write an encoder as a model directory another library loads (sentence-transformers)."""
    from ragkit import Encoder

    encoder = Encoder.load(
        model, device=device, dtype=dtype, allow_unvalidated=allow_unvalidated, precision="fp32"
    )  # the weights as they are, not as encoding casts them
    encoder.export(directory, format=format)
    console.print(f"exported {model!r} ({encoder.dim} dims) to {directory}/ as {format}")
    console.print(f'load it: SentenceTransformer("{directory}", trust_remote_code=True)')


@app.command()
def serve(
    index_dir: Annotated[
        Path | None, typer.Option("--index", "-i", help="Index to search (its encoder serves embeddings).")
    ] = None,
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", help="Encoder to serve without an index (default: built-in)."),
    ] = None,
    host: Annotated[
        str, typer.Option(help="Address to bind; anything but loopback needs --api-key.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535)] = 8000,
    api_key: Annotated[
        str | None,
        typer.Option(envvar="RAGKIT_API_KEY", help="Required as 'Authorization: Bearer KEY' on /v1/."),
    ] = None,
    served_model_name: Annotated[
        str | None, typer.Option(help="The model id clients send (default: the encoder's name).")
    ] = None,
    batching: Annotated[
        bool, typer.Option(help="Gather concurrent requests into shared encode calls.")
    ] = True,
    max_batch: Annotated[int, typer.Option(min=1, help="Texts per shared encode call, at most.")] = 64,
    max_wait_ms: Annotated[float, typer.Option(min=0, help="How long a request waits for company.")] = 5.0,
    device: Device = None,
    dtype: Dtype = None,
    precision: Precision = None,
    attn_implementation: AttnImplementation = None,
    allow_unvalidated: AllowUnvalidated = False,
    rerank: Rerank = None,
    quiet: Annotated[bool, typer.Option(help="No access log line per request.")] = False,
) -> None:
    """Serve OpenAI-compatible embeddings, search over an index and a search page over HTTP."""
    import ipaddress

    try:
        import uvicorn

        from ragkit.serve import ServeConfig, create_app, served_name
    except ImportError as e:
        raise RagkitError(
            f"`ragkit serve` needs the serve extra ({e.name} is missing): pip install 'ragkit[serve]'"
        ) from None
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback and not api_key:
        raise RagkitError(
            f"binding to {host} opens the server to other machines; pass --api-key KEY "
            "(or set RAGKIT_API_KEY), or bind to 127.0.0.1"
        )
    options = runtime(device, dtype, attn_implementation, allow_unvalidated, precision)
    if index_dir is not None:
        from ragkit.encoders import Encoder
        from ragkit.index import Retriever

        encoder = Encoder.load(model, **options) if model else None
        retriever, encoder = Retriever.load(index_dir, encoder=encoder, **options), None
    else:
        from ragkit.encoders import Encoder

        retriever, encoder = None, Encoder.load(model or DEFAULT_ENCODER, **options)
    name = served_model_name or served_name(retriever.encoder if retriever else encoder)
    config = ServeConfig(
        model_name=name,
        api_key=api_key,
        batching=batching,
        max_batch=max_batch,
        max_wait_ms=max_wait_ms,
        rerank=rerank,
        access_log=not quiet,
    )
    server = create_app(encoder, retriever, config)
    if not quiet:  # "POST /v1/search 200 41.3 ms" on stderr, one line per request
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        access = logging.getLogger("ragkit.serve.access")
        access.addHandler(handler)
        access.setLevel(logging.INFO)
        access.propagate = False
    what = f"index {index_dir} ({retriever.index.ntotal:,} chunks)" if retriever else "embeddings only"
    console.print(
        f"serving {name!r}, {what}, on http://{host}:{port}  (search page: /, API docs: /docs, "
        "metrics: /metrics)"
    )
    uvicorn.run(server, host=host, port=port, log_level="warning")


@app.command()
def adapt(
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to save the encoder (a directory).")],
    model: Model = "smollm2-135m",
    stages: Annotated[
        str,
        typer.Option(
            help="Comma-separated, in order: mntp,simcse,supervised,distill,synthetic "
            "(distill: learn --teacher's scores; synthetic: queries an LLM writes for --corpus, then "
            "contrastive training on them)."
        ),
    ] = "mntp,simcse",
    preset: Annotated[
        str, typer.Option(help="paper (the published recipe), cpu-small or cpu-smoke.")
    ] = "paper",
    config: Annotated[
        Path | None, typer.Option(help="TOML with a table per stage, e.g. \\[mntp] steps = 500.")
    ] = None,
    corpus: Annotated[
        Path | None,
        typer.Option(help="Your own documents (no labels needed) as MNTP, SimCSE and synthetic-query data."),
    ] = None,
    mntp_data: Annotated[str | None, typer.Option(help="Text file, folder or Hub dataset for MNTP.")] = None,
    simcse_data: Annotated[str | None, typer.Option(help="Sentences (file, folder or Hub dataset).")] = None,
    supervised_data: Annotated[
        str | None,
        typer.Option(
            help="(query, positive, negative) .jsonl, a folder of them, or a Hub id (supervised, distill)."
        ),
    ] = None,
    teacher: Annotated[
        str | None,
        typer.Option(
            help="For distill: a sentence-transformers model (all-minilm-l6-v2, a folder or a Hub id), "
            "a ragkit encoder, or bm25."
        ),
    ] = None,
    steps: Annotated[int | None, typer.Option(help="Optimizer steps per stage.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Sequences per step, over all processes.")] = None,
    micro_batch_size: Annotated[int | None, typer.Option(help="Sequences per forward pass.")] = None,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate.")] = None,
    max_length: Annotated[int | None, typer.Option(help="Tokens per training sequence.")] = None,
    checkpoint_every: Annotated[int | None, typer.Option(help="Steps between checkpoints.")] = None,
    restart: Annotated[bool, typer.Option(help="Discard an unfinished run instead of resuming it.")] = False,
    device: Device = None,
    dtype: Dtype = None,
    attn_implementation: Annotated[
        str | None, typer.Option(help="sdpa (default), eager or flash_attention_2.")
    ] = None,
    allow_unvalidated: Annotated[bool, typer.Option(help="Train a model type not validated here.")] = False,
) -> None:
    """Turn a decoder into an LLM2Vec encoder: MNTP, SimCSE and/or supervised contrastive LoRA training.

    An interrupted run resumes from its last checkpoint when the same command is run again.
    """
    from ragkit.adapt import adapt as run_adapt
    from ragkit.adapt import stage_configs

    names = [s.strip() for s in stages.split(",") if s.strip()]
    if corpus is not None and not corpus.exists():
        raise RagkitError(f"--corpus {corpus} does not exist")
    unsupervised = str(corpus) if corpus is not None else None
    data = {
        "mntp": mntp_data or unsupervised,
        "simcse": simcse_data or unsupervised,
        "supervised": supervised_data,
        "distill": supervised_data,
        "synthetic": unsupervised,
    }
    if teacher is not None and "distill" not in names:
        raise RagkitError("--teacher is for the distill stage: add distill to --stages")
    configs = stage_configs(
        names,
        preset,
        config,
        data,
        {"distill": {"teacher": teacher}},
        steps=steps,
        batch_size=batch_size,
        micro_batch_size=micro_batch_size,
        lr=lr,
        max_length=max_length,
        checkpoint_every=checkpoint_every,
    )
    try:
        report = run_adapt(
            model,
            out,
            configs,
            device=device,
            dtype=dtype,
            attn_implementation=attn_implementation,
            restart=restart,
            allow_unvalidated=allow_unvalidated,
        )
    except KeyboardInterrupt:
        errors.print(
            f"interrupted; run the same command again to resume from the last checkpoint "
            f"(kept in {out}.training)",
            soft_wrap=True,
        )
        sys.exit(130)
    if int(os.environ.get("RANK", "0")) != 0:
        return  # under torchrun, one summary: rank 0's
    table = Table(title=f"adapted {model} -> {report.out}")
    for column in ("stage", "steps", "loss (first 10 -> last 10)", "time", "tokens/s"):
        table.add_column(column, justify="left" if column == "stage" else "right")
    for name in report.skipped:
        table.add_row(name, "done earlier", "", "", "")
    for r in report.stages:
        resumed = f" (resumed at {r.resumed_from})" if r.resumed_from else ""
        table.add_row(
            r.stage,
            f"{r.steps}{resumed}",
            f"{r.first_loss:.4f} -> {r.last_loss:.4f}",
            f"{r.seconds:.0f} s",
            f"{r.tokens_per_s:,.0f}",
        )
    console.print(table)
    for counts in sorted((report.out / "training").glob("*-pairs.json")):  # a synthetic stage's data
        c = json.loads(counts.read_text())
        console.print(
            f"synthetic queries: {c['written']} written for {c['passages']} passages, {c['kept']} kept "
            f"by the round trip ({counts.with_suffix('.jsonl').name})",
            soft_wrap=True,
        )
    console.print(f"loss curve: {report.out / 'training' / 'loss.png'}", soft_wrap=True)
    console.print(f"next: ragkit index corpus/ --model {report.out}", soft_wrap=True)


@app.command("eval")
def eval_(
    task: Annotated[
        list[str],
        typer.Option(
            "--task", "-t", help="MTEB retrieval task name (e.g. SciFact) or BEIR folder; repeatable."
        ),
    ],
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            "-m",
            help="Encoder to score (ragkit model, sentence-transformers dir, all-minilm-l6-v2); repeatable. "
            f"Default: {DEFAULT_ENCODER}, unless --bm25 or --index is given.",
        ),
    ] = None,
    bm25: Annotated[
        bool, typer.Option("--bm25", help="Also score BM25 (bm25s), the lexical reference.")
    ] = False,
    index_dir: Annotated[
        Path | None, typer.Option("--index", "-i", help="Score a ragkit index built from the task's corpus.")
    ] = None,
    mode: Annotated[
        list[str] | None,
        typer.Option(help="Search mode(s) to score --index with: dense, bm25, hybrid; repeatable."),
    ] = None,
    method: Annotated[
        str | None,
        typer.Option(
            "--fusion",
            help="How hybrid fuses: weighted (min-max scores) or rrf (ranks). Default: the index's.",
        ),
    ] = None,
    weight: Annotated[
        float | None, typer.Option(help="Hybrid's dense share, 0 to 1. Default: the index's.")
    ] = None,
    split: Annotated[str | None, typer.Option(help="qrels split (default: the task's test split).")] = None,
    max_docs: Annotated[
        int | None, typer.Option(min=1, help="Subsample larger corpora to this many docs (judged ones kept).")
    ] = None,
    max_doc_tokens: Annotated[
        int | None, typer.Option(min=2, help="Truncate documents to this many tokens.")
    ] = None,
    spec: Annotated[str, typer.Option(help="faiss index for --model: flat (exact), hnsw, ivf, ...")] = "flat",
    pca: Annotated[int | None, typer.Option(help="Reduce vectors with PCA, as ragkit index --pca.")] = None,
    dim: Annotated[int | None, typer.Option(help="Keep the first DIM dims, as ragkit index --dim.")] = None,
    task_instructions: Annotated[
        bool,
        typer.Option(help="Queries carry the task's instruction (LLM2Vec); off: the encoder's own, if any."),
    ] = True,
    query_instruction: Annotated[
        str | None,
        typer.Option(help="Instruction for a BEIR folder's queries (default: from its MTEB task)."),
    ] = None,
    pooling: Pooling = None,
    causal: Causal = False,
    max_length: MaxLength = None,
    input_format: InputFormat = None,
    template: Template = None,
    cache: Annotated[bool, typer.Option(help="Reuse corpus embeddings from earlier runs.")] = True,
    save_predictions: Annotated[
        bool, typer.Option(help="Also save each system's rankings (top 1000 per query) as JSON.")
    ] = False,
    batch_size: Annotated[int, typer.Option(min=1)] = 32,
    output: Annotated[Path, typer.Option(help="Folder for mteb results JSON, summary and chart.")] = Path(
        "ragkit-eval"
    ),
    device: Device = None,
    dtype: Dtype = None,
    precision: Precision = None,
    attn_implementation: AttnImplementation = None,
    allow_unvalidated: AllowUnvalidated = False,
    devices: Devices = None,
) -> None:
    """Score encoders, BM25 or an index on retrieval tasks with mteb's metrics (nDCG@10, ...)."""
    from ragkit.eval import DenseSearch, IndexSearch, evaluate, load_task
    from ragkit.eval.bm25 import BM25Search
    from ragkit.eval.models import load_eval_model
    from ragkit.eval.report import comparison_table, plot_comparison, results_table
    from ragkit.index import Retriever

    tasks = [load_task(t, split, query_instruction) for t in task]
    systems = []
    if bm25:
        systems.append(BM25Search())
    if index_dir is not None:
        retriever = Retriever.load(
            index_dir,
            **runtime(device, dtype, attn_implementation, allow_unvalidated, precision),
        )
        for search_mode in mode or [None]:
            systems.append(IndexSearch(retriever, mode=search_mode, method=method, weight=weight))
    for name in model or ([] if systems else [DEFAULT_ENCODER]):
        loaded = load_eval_model(
            name,
            batch_size=batch_size,
            task_instructions=task_instructions,
            **vector_shape(pooling, causal, max_length, input_format, template, devices),
            **runtime(device, dtype, attn_implementation, allow_unvalidated, precision),
        )
        systems.append(
            DenseSearch(loaded, spec=spec, pca=pca, dim=dim, max_doc_tokens=max_doc_tokens, cache=cache)
        )
    labels = [s.label for s in systems]
    for i, label in enumerate(labels):  # two models from same-named folders still get their own column
        if labels.count(label) > 1:
            systems[i].label = f"{label}#{labels[:i].count(label) + 1}"

    rows = evaluate(
        systems, tasks, output=output, max_docs=max_docs, predictions=save_predictions, console=errors
    )
    console.print(results_table(rows))
    if len(systems) > 1:
        console.print(comparison_table(rows))
        chart = plot_comparison(rows, output / "ndcg_at_10.png")
        console.print(f"chart: {chart}")
    console.print(f"results: {output}/ (mteb JSON per system and task, summary.json)")


@app.command()
def info() -> None:
    """Versions, devices, the faiss build and the built-in models."""
    import torch
    import transformers

    from ragkit import __version__
    from ragkit.encoders import BUILTIN_ENCODERS, BUILTIN_MODELS, VALIDATED_MODEL_TYPES
    from ragkit.index import faiss_build
    from ragkit.paths import ragkit_home

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    console.print(f"ragkit {__version__}, torch {torch.__version__}, transformers {transformers.__version__}")
    console.print(f"GPU: {gpu}")
    console.print(faiss_build().describe())
    console.print(f"cache: {ragkit_home()}")
    console.print(f"built-in models: {', '.join(BUILTIN_MODELS)}; encoders: {', '.join(BUILTIN_ENCODERS)}")
    console.print(f"bidirectional attention validated for: {', '.join(sorted(VALIDATED_MODEL_TYPES))}")


def cli_flags() -> dict[str, str]:
    """Python parameter name -> its long CLI flag, over every command (`index_dir` -> "--index")."""
    flags: dict[str, str] = {}
    for command in typer.main.get_command(app).commands.values():
        for param in command.params:
            long = [opt for opt in param.opts if opt.startswith("--")]
            if long and param.name:
                flags.setdefault(param.name, long[0])
    return flags


def main() -> None:
    """Entry point: user errors are one line on stderr, never a traceback; parameters named as flags."""
    try:
        app()
    except RagkitError as e:
        message = escape(for_flags(str(e), cli_flags()))
        errors.print(f"[red]error:[/] {message}", soft_wrap=True, highlight=False)
        sys.exit(1)
    except KeyboardInterrupt:
        errors.print("interrupted")
        sys.exit(130)
