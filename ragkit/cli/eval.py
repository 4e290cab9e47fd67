"""`ragkit eval`: encoders, BM25 or an index scored on retrieval tasks."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ragkit.cli.options import (
    AllowUnvalidated,
    AttnImplementation,
    Causal,
    Device,
    Devices,
    Dtype,
    InputFormat,
    MaxLength,
    Pooling,
    Precision,
    Template,
    console,
    errors,
    runtime,
    vector_shape,
)
from ragkit.encoders.loading import DEFAULT_ENCODER


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
    systems: list[BM25Search | IndexSearch | DenseSearch] = []
    if bm25:
        systems.append(BM25Search())
    if index_dir is not None:
        retriever = Retriever.load(
            index_dir,
            **runtime(device, dtype, attn_implementation, allow_unvalidated, precision),
        )
        modes: list[str | None] = list(mode) if mode else [None]
        for search_mode in modes:
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
