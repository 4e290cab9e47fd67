"""Contrastive backprop over length-sorted chunks, with optional gradient caching (Gao et al., 2021).

Each side of a batch (queries, positives, ...) is sorted by length and cut into chunks, so short
texts are not padded to the longest one in the batch. Without caching, the chunks keep their graphs
and the loss backpropagates once. With caching, a batch larger than memory still gets the exact
gradient: 1. embed every chunk without a graph; 2. compute the loss on all vectors and its gradient
with respect to them; 3. re-embed each chunk with a graph and push that gradient through. The random
state of step 1 is replayed in step 3, so dropout (SimCSE's noise) matches.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ragkit.encoders.encoder import Encoder


@dataclass
class Side:
    """One side of a contrastive batch: token ids and the prompt (instruction) length of each row."""

    ids: list[list[int]]
    prompt_lengths: list[int]


class RandomState:
    """The random generators' state before a forward pass, so that GradCache's second pass drops out the same
    units."""

    def __init__(self) -> None:
        self.cpu = torch.get_rng_state()
        self.cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None

    @contextlib.contextmanager
    def replay(self):
        """A context in which the generators run from the saved state (restored after)."""
        devices = list(range(torch.cuda.device_count())) if self.cuda is not None else []
        with torch.random.fork_rng(devices=devices):
            torch.set_rng_state(self.cpu)
            if self.cuda is not None:
                torch.cuda.set_rng_state_all(self.cuda)
            yield


def length_chunks(lengths: list[int], max_rows: int, max_tokens: int) -> list[list[int]]:
    """Row indices, longest first, in chunks of at most `max_rows` rows and `max_tokens` padded tokens."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    chunks: list[list[int]] = []
    for i in order:
        if (
            chunks
            and len(chunks[-1]) < max_rows
            and (len(chunks[-1]) + 1) * lengths[chunks[-1][0]] <= max_tokens
        ):
            chunks[-1].append(i)
        else:
            chunks.append([i])
    return chunks


def contrastive_backward(
    encoder: Encoder,
    sides: list[Side],
    loss_fn: Callable[..., torch.Tensor],
    *,
    max_rows: int,
    max_tokens: int,
    cache: bool,
) -> float:
    """Backpropagate `loss_fn(*one vector per row of each side, in row order)`; returns the loss."""
    plans = []
    for side in sides:
        chunks = length_chunks([len(ids) for ids in side.ids], max_rows, max_tokens)
        batches = [encoder.pad([side.ids[i] for i in c], [side.prompt_lengths[i] for i in c]) for c in chunks]
        order = torch.tensor([i for c in chunks for i in c])
        plans.append((batches, order, torch.argsort(order)))
    if not cache:
        vectors = [torch.cat([encoder.embed(b) for b in batches])[inverse] for batches, _, inverse in plans]
        loss = loss_fn(*vectors)
        loss.backward()
        return loss.item()
    states: list[list[RandomState]] = []
    vectors = []
    with torch.no_grad():
        for batches, _, inverse in plans:
            states.append([])
            parts = []
            for batch in batches:
                states[-1].append(RandomState())
                parts.append(encoder.embed(batch))
            vectors.append(torch.cat(parts)[inverse.to(parts[0].device)].requires_grad_())
    loss = loss_fn(*vectors)
    loss.backward()
    for (batches, order, _), side_states, side_vectors in zip(plans, states, vectors, strict=True):
        assert side_vectors.grad is not None  # loss.backward() filled it
        grads = side_vectors.grad[order.to(side_vectors.device)].split([len(b["input_ids"]) for b in batches])
        for batch, state, grad in zip(batches, side_states, grads, strict=True):
            with state.replay():
                encoder.embed(batch).backward(grad)
    return loss.item()
