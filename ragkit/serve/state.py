"""What every route of one server shares, kept on `app.state.ragkit`."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from fastapi import Request

from ragkit.encoders import Encoder
from ragkit.index import Retriever
from ragkit.serve.batching import DynamicBatcher
from ragkit.serve.config import ServeConfig
from ragkit.serve.metrics import Metrics


@dataclass
class ServerState:
    """What every route shares: the encoder, the retriever (if any), the settings and the batcher."""

    encoder: Encoder
    retriever: Retriever | None
    config: ServeConfig
    batcher: DynamicBatcher = field(init=False)
    metrics: Metrics = field(init=False)

    def __post_init__(self) -> None:
        instructions = {
            "query": self.encoder.config.query_instruction,
            "document": self.encoder.config.document_instruction,
        }

        def encode(kind: str, texts: list[str]) -> tuple[np.ndarray, list[int]]:
            ids, _ = self.encoder.token_ids(texts, instructions[kind])
            return self.encoder.encode(texts, instruction=instructions[kind]), [len(row) for row in ids]

        self.metrics = Metrics(queued_texts=lambda: self.batcher.pending_texts)
        self.batcher = DynamicBatcher(
            encode,
            max_batch=self.config.max_batch,
            max_wait_ms=self.config.max_wait_ms,
            enabled=self.config.batching,
            on_batch=self.metrics.observe_batch,
        )


def server_state(request: Request) -> ServerState:
    """The dependency routes declare to reach the server's encoder, index, batcher and settings."""
    return request.app.state.ragkit
