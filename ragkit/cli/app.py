"""`ragkit` command line. Each command parses options, calls the Python API, and prints."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ragkit.errors import RagkitError

app = typer.Typer(
    help="Decoder LLMs as text encoders (LLM2Vec), and retrieval on top of them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()
errors = Console(stderr=True)

Model = Annotated[
    str, typer.Option("--model", "-m", help="Built-in name, Hugging Face id, model directory or .gguf file.")
]
Device = Annotated[str | None, typer.Option(help="cpu, cuda or cuda:N (default: cuda if available).")]
Dtype = Annotated[
    str | None, typer.Option(help="float32, bfloat16, ... (default: fp32 on CPU, bf16 on GPU).")
]


@app.command()
def embed(
    texts: Annotated[list[str] | None, typer.Argument(help="Texts to embed.")] = None,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="Also embed each line of this file.")
    ] = None,
    model: Model = "smollm2-135m",
    instruction: Annotated[str | None, typer.Option(help="Attended to but not pooled.")] = None,
    pooling: Annotated[str | None, typer.Option(help="mean, weighted_mean or last_token.")] = None,
    causal: Annotated[
        bool, typer.Option("--causal", help="Keep the causal mask (no LLM2Vec step 1).")
    ] = False,
    max_length: Annotated[int | None, typer.Option(help="Longer texts are truncated.")] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 32,
    out: Annotated[Path | None, typer.Option(help="Save the (n, dim) float32 matrix as .npy.")] = None,
    device: Device = None,
    dtype: Dtype = None,
) -> None:
    """Embed texts and print their cosine-similarity matrix."""
    import numpy as np

    from ragkit import Encoder

    texts = list(texts or [])
    if file is not None:
        if not file.is_file():
            raise RagkitError(f"--file {file} does not exist")
        texts += [line.strip() for line in file.read_text(errors="replace").splitlines() if line.strip()]
    if not texts:
        raise RagkitError("nothing to embed: give texts as arguments or --file with one text per line")

    encoder = Encoder.load(
        model,
        pooling=pooling,
        bidirectional=False if causal else None,
        max_length=max_length,
        device=device,
        dtype=dtype,
    )
    start = time.perf_counter()
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


@app.command()
def info() -> None:
    """Versions, devices, the faiss build and the built-in models."""
    import torch
    import transformers

    from ragkit import __version__
    from ragkit.encoders import BUILTIN_MODELS, VALIDATED_MODEL_TYPES
    from ragkit.index import faiss_build
    from ragkit.paths import ragkit_home

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    console.print(f"ragkit {__version__}, torch {torch.__version__}, transformers {transformers.__version__}")
    console.print(f"GPU: {gpu}")
    console.print(faiss_build().describe())
    console.print(f"cache: {ragkit_home()}")
    console.print(f"built-in models: {', '.join(BUILTIN_MODELS)}")
    console.print(f"bidirectional attention validated for: {', '.join(sorted(VALIDATED_MODEL_TYPES))}")


def main() -> None:
    """Entry point: user errors are one line on stderr, never a traceback."""
    try:
        app()
    except RagkitError as e:
        errors.print(f"[red]error:[/] {e}", soft_wrap=True, highlight=False)
        sys.exit(1)
    except KeyboardInterrupt:
        errors.print("interrupted")
        sys.exit(130)
