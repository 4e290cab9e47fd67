"""`ragkit serve`: embeddings, search and a search page over HTTP."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ragkit.cli.options import (
    AllowUnvalidated,
    AttnImplementation,
    Device,
    Dtype,
    Precision,
    Rerank,
    console,
    runtime,
)
from ragkit.encoders.loading import DEFAULT_ENCODER
from ragkit.errors import RagkitError

if TYPE_CHECKING:
    from ragkit.index import Retriever


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
    from ragkit.encoders import Encoder

    retriever: Retriever | None = None
    if index_dir is not None:
        from ragkit.index import Retriever

        chosen = Encoder.load(model, **options) if model else None  # else the one the index names
        retriever = Retriever.load(index_dir, encoder=chosen, **options)
        encoder = retriever.encoder
    else:
        encoder = Encoder.load(model or DEFAULT_ENCODER, **options)
    name = served_model_name or served_name(encoder)
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
