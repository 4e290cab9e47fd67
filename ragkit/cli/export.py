"""`ragkit export`: an encoder as a model directory another library loads."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ragkit.cli.options import AllowUnvalidated, Device, Dtype, Model, console
from ragkit.encoders.loading import DEFAULT_ENCODER


def export(
    directory: Annotated[Path, typer.Argument(help="Where to write the exported model.")],
    model: Model = DEFAULT_ENCODER,
    format: Annotated[str, typer.Option("--format", help="sentence-transformers.")] = "sentence-transformers",
    device: Device = None,
    dtype: Dtype = None,
    allow_unvalidated: AllowUnvalidated = False,
    overwrite: Annotated[
        bool,
        typer.Option(
            help="Write into a folder that is not empty: replaces the files an export writes (a "
            "previous export's), keeps every other file."
        ),
    ] = False,
) -> None:
    """Write an encoder as a model directory another library loads (sentence-transformers)."""
    from ragkit import Encoder
    from ragkit.encoders.export import check_target

    check_target(directory, overwrite)  # refused now, not after loading the model

    encoder = Encoder.load(
        model, device=device, dtype=dtype, allow_unvalidated=allow_unvalidated, precision="fp32"
    )  # the weights as they are, not as encoding casts them
    encoder.export(directory, format=format, overwrite=overwrite)
    console.print(f"exported {model!r} ({encoder.dim} dims) to {directory}/ as {format}")
    console.print(f'load it: SentenceTransformer("{directory}", trust_remote_code=True)')
