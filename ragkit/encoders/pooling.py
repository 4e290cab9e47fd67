"""Token states -> one vector per text.

Every pooler sees the same `pooled` mask: the text's real tokens, without padding and without the
prompt (BOS and instruction). The prompt is attended to but not averaged, as in LLM2Vec and
sentence-transformers' `include_prompt=False`. Positions are counted among real tokens, so the
same code is right for left and right padding.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch

from ragkit.errors import RagkitError

PoolingMode = Literal["mean", "weighted_mean", "last_token", "eos_token"]  # the keys of POOLERS


def pooled_mask(attention_mask: torch.Tensor, prompt_lengths: torch.Tensor | None = None) -> torch.Tensor:
    """Bool (batch, seq): real tokens at or after each row's prompt length.

    A row whose text has no token of its own (empty text) falls back to all its real tokens,
    so every row pools over something.
    """
    real = attention_mask.bool()
    if prompt_lengths is None:
        return real
    rank = attention_mask.long().cumsum(-1) - 1  # index of each token among the row's real tokens
    mask = real & (rank >= prompt_lengths[:, None])
    empty = ~mask.any(-1, keepdim=True)
    return torch.where(empty, real, mask)


def _weighted(hidden: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    weights = weights / weights.sum(-1, keepdim=True)
    return torch.einsum("bs,bsd->bd", weights, hidden)


def _mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return _weighted(hidden, mask.float())


def _weighted_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    # SGPT's position weighting: later tokens have seen more of the text.
    return _weighted(hidden, mask.long().cumsum(-1).float() * mask)


def _last(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    last = mask.long().cumsum(-1).argmax(-1)  # first position holding the row's final count
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]


# mode -> (float hidden states (batch, seq, dim), pooled mask (batch, seq)) -> (batch, dim).
# A new mode is a row here (and its name in `PoolingMode`); "eos_token" pools the last token too,
# of a text the input format ends with an EOS (llm2vec's mode).
POOLERS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "mean": _mean,
    "weighted_mean": _weighted_mean,
    "last_token": _last,
    "eos_token": _last,
}
POOLING_MODES: tuple[str, ...] = tuple(POOLERS)


def pool(
    hidden: torch.Tensor,
    attention_mask: torch.Tensor,
    prompt_lengths: torch.Tensor | None = None,
    mode: PoolingMode = "mean",
) -> torch.Tensor:
    """(batch, seq, dim) hidden states -> (batch, dim) float32 sentence vectors."""
    if mode not in POOLERS:
        raise RagkitError(f"unknown pooling {mode!r}: use one of {', '.join(POOLING_MODES)}")
    return POOLERS[mode](hidden.float(), pooled_mask(attention_mask, prompt_lengths))
