"""The HTTP server: OpenAI-compatible embeddings, search over an index, and a search page.

A thin layer over `Encoder` and `Retriever`: requests are validated into their schemas, texts are
encoded through one `DynamicBatcher` (so concurrent requests share batches), and every error is a
one-line JSON body in OpenAI's shape, never a traceback.
"""

from __future__ import annotations

import base64
import hmac
import logging
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ragkit.encoders import Encoder
from ragkit.errors import RagkitError, first_line
from ragkit.index import Retriever
from ragkit.index.rerank import RERANK_TOP, load_reranker
from ragkit.serve.batching import DynamicBatcher
from ragkit.serve.schemas import (
    Embedding,
    EmbeddingRequest,
    EmbeddingResponse,
    SearchRequest,
    SearchResponse,
    SearchResult,
    Usage,
)

log = logging.getLogger("ragkit.serve")


@dataclass
class ServeConfig:
    """How the server batches, what it accepts, and who may call it.

    `api_key`: required as "Authorization: Bearer KEY" on /v1/ routes when set (the page and
    /health stay open, the page sends the key its user types). The limits bound what one request
    may cost: bytes of body, texts per embeddings request, queries and k per search.
    """

    model_name: str = "ragkit"
    api_key: str | None = None
    batching: bool = True
    max_batch: int = 64
    max_wait_ms: float = 5.0
    max_request_bytes: int = 8 * 1024 * 1024
    max_inputs: int = 2048  # OpenAI's limit per embeddings request
    max_queries: int = 256
    max_k: int = 1000
    # A sentence-transformers CrossEncoder (path or Hub id) loaded at start; a search request's
    # `rerank` (default: true when set) reorders its top hits with it (ragkit/index/rerank.py).
    rerank: str | None = None


class ApiError(Exception):
    """A request the server refuses: an HTTP status and a one-line message."""

    def __init__(
        self, status: int, message: str, kind: str = "invalid_request_error", code: str | None = None
    ):
        super().__init__(message)
        self.status, self.message, self.kind, self.code = status, message, kind, code


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
    if encoder is None and retriever is None:
        raise RagkitError("pass an `encoder` or a `retriever` to serve")
    encoder = retriever.encoder if retriever is not None else encoder
    config = config or ServeConfig(model_name=served_name(encoder))
    instructions = {
        "query": encoder.config.query_instruction,
        "document": encoder.config.document_instruction,
    }

    def encode(kind: str, texts: list[str]) -> tuple[np.ndarray, list[int]]:
        ids, _ = encoder.token_ids(texts, instructions[kind])
        return encoder.encode(texts, instruction=instructions[kind]), [len(row) for row in ids]

    batcher = DynamicBatcher(
        encode, max_batch=config.max_batch, max_wait_ms=config.max_wait_ms, enabled=config.batching
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        batcher.close()  # the retriever and encoder are the caller's

    app = FastAPI(
        title="ragkit",
        summary="OpenAI-compatible embeddings and search over a ragkit index.",
        lifespan=lifespan,
    )
    app.state.batcher, app.state.config = batcher, config

    @app.middleware("http")
    async def guard(request: Request, call_next):
        """Size limit and API key before any body is read."""
        if request.method == "POST":
            length = request.headers.get("content-length")
            if length is None or not length.isdigit():
                return _error(ApiError(411, "send a Content-Length header with the request body"))
            if int(length) > config.max_request_bytes:
                return _error(
                    ApiError(
                        413, f"request body of {length} bytes is over the limit of {config.max_request_bytes}"
                    )
                )
        if config.api_key and request.url.path.startswith("/v1/"):
            sent = request.headers.get("authorization", "")
            if not hmac.compare_digest(sent.encode(), f"Bearer {config.api_key}".encode()):
                return _error(
                    ApiError(
                        401,
                        "missing or wrong API key: send 'Authorization: Bearer KEY'",
                        "authentication_error",
                    )
                )
        return await call_next(request)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError):
        return _error(error)

    @app.exception_handler(RagkitError)
    async def ragkit_error(request: Request, error: RagkitError):
        return _error(ApiError(400, first_line(error)))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError):
        first = error.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ())[1:]) or "body"
        return _error(ApiError(400, f"{where}: {first.get('msg', 'invalid')}"))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException):
        return _error(ApiError(error.status_code, str(error.detail)))

    @app.exception_handler(Exception)
    async def internal(request: Request, error: Exception):
        log.exception("request to %s failed", request.url.path)
        return _error(
            ApiError(500, f"internal error ({type(error).__name__}): {first_line(error)}", "server_error")
        )

    @app.get("/health")
    async def health() -> dict:
        snapshot = retriever.snapshot if retriever is not None else None
        return {
            "status": "ok",
            "model": config.model_name,
            "dim": encoder.dim,
            "index": str(retriever.index_dir) if retriever is not None else None,
            "chunks": snapshot.index.ntotal if snapshot is not None else 0,
            "modes": _modes(retriever),
            "default_mode": retriever.resolve_mode(None) if retriever is not None else None,
            "default_setting": retriever.resolve().label if retriever is not None else None,
            "auth": bool(config.api_key),
            "batching": {
                "enabled": config.batching,
                "max_batch": config.max_batch,
                "batches": batcher.batches,
            },
        }

    @app.get("/v1/models")
    async def models() -> dict:
        return {
            "object": "list",
            "data": [{"id": config.model_name, "object": "model", "created": 0, "owned_by": "ragkit"}],
        }

    @app.post("/v1/embeddings", response_model=EmbeddingResponse)
    async def embeddings(body: EmbeddingRequest) -> EmbeddingResponse:
        if body.model != config.model_name:
            raise ApiError(
                404,
                f"model {body.model!r} is not served here; use {config.model_name!r}",
                code="model_not_found",
            )
        texts = [body.input] if isinstance(body.input, str) else body.input
        if not texts:
            raise ApiError(400, "input is empty; send a string or a list of strings")
        if not all(isinstance(t, str) for t in texts):
            raise ApiError(
                400,
                "input as token ids is not supported (they would be another tokenizer's); send strings "
                "(LangChain: OpenAIEmbeddings(check_embedding_ctx_length=False))",
            )
        if len(texts) > config.max_inputs:
            raise ApiError(400, f"{len(texts)} inputs is over the limit of {config.max_inputs} per request")
        vectors, counts = await batcher.encode(body.input_type, texts)
        vectors = _reduce(vectors, body.dimensions, encoder, retriever)
        data = [
            Embedding(index=i, embedding=_b64(v) if body.encoding_format == "base64" else v.tolist())
            for i, v in enumerate(vectors)
        ]
        used = int(sum(counts))
        return EmbeddingResponse(
            data=data, model=config.model_name, usage=Usage(prompt_tokens=used, total_tokens=used)
        )

    @app.post("/v1/search", response_model=SearchResponse)
    async def search(body: SearchRequest) -> SearchResponse:
        if retriever is None:
            raise ApiError(404, "no index is served; start the server with --index DIR", code="no_index")
        if (body.query is None) == (body.queries is None):
            raise ApiError(400, "send one of `query` (a string) and `queries` (a list of strings)")
        queries = [body.query] if body.query is not None else body.queries
        if not queries or len(queries) > config.max_queries:
            raise ApiError(400, f"send 1 to {config.max_queries} queries, got {len(queries)}")
        if body.k > config.max_k:
            raise ApiError(400, f"k is {body.k}, over the limit of {config.max_k}")
        if body.rerank and config.rerank is None:
            raise ApiError(
                400, "this server has no reranker; start it with --rerank MODEL", code="no_reranker"
            )
        rerank = config.rerank if body.rerank is not False else None
        setting = retriever.resolve(body.mode, body.fusion, body.weight)
        vectors = None if setting.mode == "bm25" else (await batcher.encode("query", queries))[0]
        hits = await run_in_threadpool(
            retriever.search,
            queries,
            k=body.k,
            filter=body.filter,
            mode=setting.mode,
            method=setting.method,
            weight=setting.weight,
            query_vectors=vectors,
            rerank=rerank,
            rerank_top=max(body.rerank_top or RERANK_TOP, body.k),
        )
        results = [
            SearchResult(query=q, hits=[asdict(h) for h in found])
            for q, found in zip(queries, hits, strict=True)
        ]
        return SearchResponse(
            model=config.model_name, mode=setting.mode, setting=setting.label, results=results
        )

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> str:
        return resources.files("ragkit.serve").joinpath("page.html").read_text(encoding="utf-8")

    return app


def _reduce(
    vectors: np.ndarray, dimensions: int | None, encoder: Encoder, retriever: Retriever | None
) -> np.ndarray:
    """OpenAI's `dimensions`: the encoder's own size, or the served index's PCA / truncation size."""
    if dimensions is None or dimensions == encoder.dim:
        return vectors
    transform = retriever.transform if retriever is not None else None
    if transform is not None and transform.kind != "none" and dimensions == transform.dim_out:
        return transform.apply(vectors)
    sizes = [encoder.dim] + (
        [transform.dim_out] if transform is not None and transform.kind != "none" else []
    )
    raise ApiError(
        400,
        f"dimensions {dimensions} is not served; use {' or '.join(map(str, sizes))} "
        "(an index built with --pca or --dim serves its size too)",
    )


def _b64(vector: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(vector, dtype="<f4").tobytes()).decode("ascii")


def _modes(retriever: Retriever | None) -> list[str]:
    if retriever is None:
        return []
    return ["hybrid", "dense", "bm25"] if retriever.lexical is not None else ["dense"]


def _error(error: ApiError) -> JSONResponse:
    body = {"error": {"message": error.message, "type": error.kind, "param": None, "code": error.code}}
    return JSONResponse(body, status_code=error.status)
