"""Request and response bodies: OpenAI's embeddings shapes, and ragkit's search."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class EmbeddingRequest(BaseModel):
    """POST /v1/embeddings, as OpenAI defines it, plus `input_type` (Voyage's and Cohere's name).

    `input_type` "query" gives a text the encoder's query instruction (LLM2Vec embeds queries with
    one); "document", the default, embeds texts as an index holds them.
    """

    model_config = ConfigDict(extra="ignore")  # OpenAI clients may send fields we do not use

    input: str | list[str] | list[int] | list[list[int]]
    model: str
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)
    user: str | None = None
    input_type: Literal["query", "document"] = "document"


class Embedding(BaseModel):
    """One vector of an embeddings response."""

    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str  # str: base64 of little-endian float32


class Usage(BaseModel):
    """Tokens the request's texts took, as OpenAI reports them."""

    prompt_tokens: int
    total_tokens: int


class EmbeddingResponse(BaseModel):
    """The body of POST /v1/embeddings, as OpenAI's API."""

    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: Usage


class SearchRequest(BaseModel):
    """POST /v1/search: one `query` or several `queries`, and `Retriever.search`'s options."""

    model_config = ConfigDict(extra="forbid")  # a misspelt option is an error, not silently ignored

    query: str | None = None
    queries: list[str] | None = None
    k: int = Field(default=10, ge=1)
    mode: Literal["dense", "bm25", "hybrid"] | None = None
    # None: the index's calibrated setting (`Retriever.resolve`); either alone means hybrid.
    fusion: Literal["weighted", "rrf"] | None = None
    weight: float | None = Field(default=None, ge=0, le=1)
    filter: dict | None = None
    # Reorder the top `rerank_top` hits with the server's cross-encoder (None: when it has one).
    rerank: bool | None = None
    rerank_top: int | None = Field(default=None, ge=1, le=1000)


class SearchHit(BaseModel):
    """One hit of a search response (`Hit` over HTTP)."""

    score: float
    doc_id: str
    text: str
    path: str
    title: str
    metadata: dict
    chunk_id: int
    start: int
    end: int
    retrieval_score: float | None = None  # the search's score, when a reranker set `score`


class SearchResult(BaseModel):
    """One query's hits."""

    query: str
    hits: list[SearchHit]


class SearchResponse(BaseModel):
    """The body of POST /v1/search: the setting searched and each query's hits."""

    model: str
    mode: str  # the mode searched (the index's default where the request named none)
    setting: str = ""  # the whole setting searched: "dense", "bm25" or "<fusion> <weight>"
    results: list[SearchResult]
