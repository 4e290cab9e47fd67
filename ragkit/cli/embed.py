"""`ragkit embed`: vectors for a few texts, and how alike they are."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ragkit.cli.options import (
    AllowUnvalidated,
    AttnImplementation,
    Causal,
    Device,
    Devices,
    Dtype,
    InputFormat,
    MaxLength,
    Model,
    Pooling,
    Precision,
    Template,
    console,
    runtime,
    vector_shape,
)
from ragkit.encoders.loading import DEFAULT_ENCODER
from ragkit.errors import RagkitError


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
    """The texts' pairwise cosine similarities as a rich table."""
    table = Table(title="cosine similarity", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("text", max_width=48, no_wrap=True)
    for j in range(len(texts)):
        table.add_column(str(j), justify="right")
    for i, text in enumerate(texts):
        cells = [f"[bold]{v:.2f}[/]" if i == j else f"{v:.2f}" for j, v in enumerate(sims[i])]
        table.add_row(str(i), text, *cells)
    return table
