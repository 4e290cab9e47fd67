"""The HTTP routes: health, models, OpenAI embeddings, search, metrics and the search page."""

from __future__ import annotations

import asyncio
import base64
from dataclasses import asdict
from importlib import resources

import numpy as np
from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, PlainTextResponse

from ragkit.index import Retriever
from ragkit.index.rerank import RERANK_TOP
from ragkit.serve.errors import ApiError
from ragkit.serve.metrics import CONTENT_TYPE
from ragkit.serve.schemas import (
    Embedding,
    EmbeddingRequest,
    EmbeddingResponse,
    SearchHit,
    SearchRequest,
    SearchResponse,
    SearchResult,
    Usage,
)
from ragkit.serve.state import ServerState, server_state

router = APIRouter()
DISCONNECT_POLL_S = 0.1  # how often a waiting request checks that its client is still there


@router.get("/health")
async def health(state: ServerState = Depends(server_state)) -> dict:
    """GET /health: the model served, the index (its size and search settings) and the server settings."""
    retriever, config = state.retriever, state.config
    snapshot = retriever.snapshot if retriever is not None else None
    default = retriever.resolve() if retriever is not None else None
    return {
        "status": "ok",
        "model": config.model_name,
        "dim": state.encoder.dim,
        "index": str(retriever.index_dir) if retriever is not None else None,
        "chunks": snapshot.index.ntotal if snapshot is not None else 0,
        "modes": _modes(retriever),
        "default_mode": default.mode if default is not None else None,
        "default_setting": default.label if default is not None else None,
        "auth": bool(config.api_key),
        "batching": {
            "enabled": config.batching,
            "max_batch": config.max_batch,
            "batches": state.batcher.batches,
            "queued_texts": state.batcher.pending_texts,
        },
    }


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(state: ServerState = Depends(server_state)) -> PlainTextResponse:
    """Prometheus' text format: requests, latency, batch sizes, queued texts."""
    return PlainTextResponse(state.metrics.render(), media_type=CONTENT_TYPE)


@router.get("/v1/models")
async def models(state: ServerState = Depends(server_state)) -> dict:
    """GET /v1/models, as OpenAI's API lists the one model served."""
    name = state.config.model_name
    return {"object": "list", "data": [{"id": name, "object": "model", "created": 0, "owned_by": "ragkit"}]}


@router.post("/v1/embeddings", response_model=EmbeddingResponse)
async def embeddings(
    body: EmbeddingRequest, request: Request, state: ServerState = Depends(server_state)
) -> EmbeddingResponse:
    """POST /v1/embeddings, as OpenAI's API (float or base64 vectors), encoded in shared batches."""
    config = state.config
    if body.model != config.model_name:
        raise ApiError(
            404, f"model {body.model!r} is not served here; use {config.model_name!r}", code="model_not_found"
        )
    given = [body.input] if isinstance(body.input, str) else body.input
    if not given:
        raise ApiError(400, "input is empty; send a string or a list of strings")
    texts = [t for t in given if isinstance(t, str)]
    if len(texts) != len(given):
        raise ApiError(
            400,
            "input as token ids is not supported (they would be another tokenizer's); send strings "
            "(LangChain: OpenAIEmbeddings(check_embedding_ctx_length=False))",
        )
    if len(texts) > config.max_inputs:
        raise ApiError(400, f"{len(texts)} inputs is over the limit of {config.max_inputs} per request")
    vectors, counts = await encode(state, request, body.input_type, texts)
    vectors = _reduce(vectors, body.dimensions, state)
    data = [
        Embedding(index=i, embedding=_b64(v) if body.encoding_format == "base64" else v.tolist())
        for i, v in enumerate(vectors)
    ]
    used = int(sum(counts))
    return EmbeddingResponse(
        data=data, model=config.model_name, usage=Usage(prompt_tokens=used, total_tokens=used)
    )


@router.post("/v1/search", response_model=SearchResponse)
async def search(
    body: SearchRequest, request: Request, state: ServerState = Depends(server_state)
) -> SearchResponse:
    """POST /v1/search: one query or several over the index, in its default setting unless the request
    names one."""
    retriever, config = state.retriever, state.config
    if retriever is None:
        raise ApiError(404, "no index is served; start the server with --index DIR", code="no_index")
    if (body.query is None) == (body.queries is None):
        raise ApiError(400, "send one of `query` (a string) and `queries` (a list of strings)")
    queries = [body.query] if body.query is not None else body.queries or []
    if not queries or len(queries) > config.max_queries:
        raise ApiError(400, f"send 1 to {config.max_queries} queries, got {len(queries)}")
    if body.k > config.max_k:
        raise ApiError(400, f"k is {body.k}, over the limit of {config.max_k}")
    if body.rerank and config.rerank is None:
        raise ApiError(400, "this server has no reranker; start it with --rerank MODEL", code="no_reranker")
    rerank = config.rerank if body.rerank is not False else None
    setting = retriever.resolve(body.mode, body.fusion, body.weight)
    vectors = None if setting.mode == "bm25" else (await encode(state, request, "query", queries))[0]
    hits = await run_in_threadpool(
        retriever.search,
        queries,
        k=body.k,
        filter=body.filter,
        setting=setting,
        query_vectors=vectors,
        rerank=rerank,
        rerank_top=max(body.rerank_top or RERANK_TOP, body.k),
    )
    results = [
        SearchResult(query=q, hits=[SearchHit(**asdict(h)) for h in found])
        for q, found in zip(queries, hits, strict=True)
    ]
    return SearchResponse(model=config.model_name, mode=setting.mode, setting=setting.label, results=results)


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def page() -> str:
    """GET /: the search page."""
    return resources.files("ragkit.serve").joinpath("page.html").read_text(encoding="utf-8")


async def encode(
    state: ServerState, request: Request, kind: str, texts: list[str]
) -> tuple[np.ndarray, list[int]]:
    """The texts' vectors from the shared batcher; refused when too much already waits, and dropped
    from the queue if the client leaves before its batch starts."""
    queued, limit = state.batcher.pending_texts, state.config.max_queued_texts
    if queued + len(texts) > limit:
        raise ApiError(
            503,
            f"the server is busy ({queued} texts waiting to be encoded, limit {limit}); retry shortly",
            "server_busy",
            headers={"Retry-After": "1"},
        )
    task = asyncio.ensure_future(state.batcher.encode(kind, texts))
    while True:
        done, _ = await asyncio.wait({task}, timeout=DISCONNECT_POLL_S)
        if done:
            return task.result()
        if await request.is_disconnected():
            task.cancel()  # cancels the batcher's future: a batch that has not started skips it
            raise ApiError(499, "the client closed the request", "client_closed")


def _reduce(vectors: np.ndarray, dimensions: int | None, state: ServerState) -> np.ndarray:
    """OpenAI's `dimensions`: the encoder's own size, or the served index's PCA / truncation size."""
    dim = state.encoder.dim
    if dimensions is None or dimensions == dim:
        return vectors
    retriever = state.retriever
    transform = retriever.transform if retriever is not None else None
    sizes = [dim]
    if transform is not None and transform.kind != "none":
        if dimensions == transform.dim_out:
            return transform.apply(vectors)
        sizes.append(transform.dim_out)
    raise ApiError(
        400,
        f"dimensions {dimensions} is not served; use {' or '.join(map(str, sizes))} "
        "(an index that reduces its vectors, by PCA or truncation, serves its size too)",
    )


def _b64(vector: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(vector, dtype="<f4").tobytes()).decode("ascii")


def _modes(retriever: Retriever | None) -> list[str]:
    if retriever is None:
        return []
    return ["hybrid", "dense", "bm25"] if retriever.lexical is not None else ["dense"]
