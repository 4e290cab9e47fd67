"""What the commands share: the consoles and the option declarations (one definition each)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

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

IndexDir = Annotated[Path, typer.Option("--index", "-i", help="Index directory.")]


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
