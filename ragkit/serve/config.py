"""How a server batches, what it accepts, and who may call it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ServeConfig:
    """Settings of `create_app`.

    `api_key`: required as "Authorization: Bearer KEY" on /v1/ routes when set (the page, /docs,
    /health and /metrics stay open; the page sends the key its user types). The limits bound what
    one request may cost: bytes of body, texts per embeddings request, queries and k per search;
    `max_queued_texts` bounds the texts waiting to be encoded (more: 503, retry later).
    `access_log`: one line per request on the "ragkit.serve.access" logger (method, path, status, ms).
    `rerank`: a sentence-transformers CrossEncoder (path or Hub id) loaded at start; a search
    request's `rerank` (default: true when set) reorders its top hits with it.
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
    max_queued_texts: int = 16384
    access_log: bool = True
    rerank: str | None = None
