"""`ragkit adapt`: LLM2Vec training (MNTP, SimCSE, supervised, distill, synthetic)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ragkit.cli.options import Device, Dtype, Model, console, errors
from ragkit.errors import RagkitError


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
            help="For distill, and for synthetic (GPL: the teacher labels each query's candidates): a "
            "sentence-transformers model (all-minilm-l6-v2, a folder or a Hub id), a ragkit encoder, or bm25."
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
    if teacher is not None and not {"distill", "synthetic"} & set(names):
        raise RagkitError("--teacher is for the distill and synthetic stages: add one to --stages")
    configs = stage_configs(
        names,
        preset,
        config,
        data,
        {"distill": {"teacher": teacher}, "synthetic": {"teacher": teacher}},
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
    print_report(model, report)


def print_report(model: str, report) -> None:
    """What each stage did, the synthetic stage's data, and where to look next."""
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
