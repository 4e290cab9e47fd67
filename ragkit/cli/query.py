"""`ragkit query`: search an index and print the best chunks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ragkit.cli.options import (
    AllowUnvalidated,
    AttnImplementation,
    Device,
    Dtype,
    IndexDir,
    Precision,
    Rerank,
    console,
    runtime,
)
from ragkit.errors import RagkitError
from ragkit.index.rerank import RERANK_TOP
from ragkit.retrieval.fusion import DEFAULT_METHOD, DEFAULT_WEIGHT


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
        setting=setting,
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
