"""The HTTP server: OpenAI-compatible embeddings, search over an index, a search page, metrics.

A thin layer over `Encoder` and `Retriever`: requests are validated into their schemas, texts are
encoded through one `DynamicBatcher` (so concurrent requests share batches), and every error is a
one-line JSON body in OpenAI's shape, never a traceback. The routes live in routes.py.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from ragkit.encoders import Encoder
from ragkit.errors import RagkitError
from ragkit.index import Retriever
from ragkit.index.rerank import load_reranker
from ragkit.serve.config import ServeConfig
from ragkit.serve.docs import add_offline_docs
from ragkit.serve.errors import ApiError, add_error_handlers
from ragkit.serve.middleware import Guard, Observe
from ragkit.serve.routes import router
from ragkit.serve.state import ServerState

__all__ = ["ApiError", "ServeConfig", "create_app", "served_name"]


def served_name(encoder: Encoder) -> str:
    """The model id clients send: a built-in name or hub id as loaded, a directory's own name."""
    source = encoder.config.source or encoder.model.config.model_type
    path = Path(source)
    return path.name if path.is_absolute() else source


def create_app(
    encoder: Encoder | None = None, retriever: Retriever | None = None, config: ServeConfig | None = None
) -> FastAPI:
    """The app for `ragkit serve`: embeddings with `encoder` (or the index's), search with `retriever`."""
    if config is not None and config.rerank is not None:
        load_reranker(config.rerank)  # a missing or broken model fails at start, not per request
    if retriever is not None:
        encoder = retriever.encoder
    if encoder is None:
        raise RagkitError("pass an `encoder` or a `retriever` to serve")
    state = ServerState(encoder, retriever, config or ServeConfig(model_name=served_name(encoder)))

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        state.batcher.close()  # the retriever and encoder are the caller's

    app = FastAPI(
        title="ragkit",
        summary="OpenAI-compatible embeddings and search over a ragkit index.",
        lifespan=lifespan,
        docs_url=None,
    )
    app.state.ragkit = state
    add_error_handlers(app)
    app.include_router(router)
    if not add_offline_docs(app):
        app.get("/docs", include_in_schema=False)(_cdn_docs(app))

    app.add_middleware(Guard, state=state)
    app.add_middleware(Observe, state=state)  # added last: outermost, so it sees every refusal too
    return app


def _cdn_docs(app: FastAPI):
    """FastAPI's own /docs page (Swagger UI from a CDN), where fastapi-offline is not installed."""
    from fastapi.openapi.docs import get_swagger_ui_html

    async def docs():
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json", title=f"{app.title} - API docs"
        )

    return docs
