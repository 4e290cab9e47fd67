"""Gradient caching (Gao et al., 2021): a contrastive batch larger than memory, with exact gradients.

1. embed every chunk without a graph; 2. compute the loss on the full batch of vectors and its
gradient with respect to them; 3. re-embed each chunk with a graph and push that gradient through.
The random state of step 1 is replayed in step 3, so dropout (SimCSE's noise) matches.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch

Batch = dict[str, torch.Tensor]


class RandomState:
    def __init__(self) -> None:
        self.cpu = torch.get_rng_state()
        self.cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None

    @contextlib.contextmanager
    def replay(self):
        devices = list(range(torch.cuda.device_count())) if self.cuda is not None else []
        with torch.random.fork_rng(devices=devices):
            torch.set_rng_state(self.cpu)
            if self.cuda is not None:
                torch.cuda.set_rng_state_all(self.cuda)
            yield


def contrastive_backward(
    embed: Callable[[Batch], torch.Tensor],
    sides: list[list[Batch]],
    loss_fn: Callable[..., torch.Tensor],
) -> float:
    """Backpropagate `loss_fn(*vectors of each side)`; `sides[k]` holds side k's chunks (e.g. queries).

    When every side is a single chunk this is plain backpropagation, with no second forward pass.
    """
    if all(len(chunks) == 1 for chunks in sides):
        loss = loss_fn(*(embed(chunks[0]) for chunks in sides))
        loss.backward()
        return loss.item()
    states: list[list[RandomState]] = []
    vectors = []
    with torch.no_grad():
        for chunks in sides:
            states.append([])
            parts = []
            for chunk in chunks:
                states[-1].append(RandomState())
                parts.append(embed(chunk))
            vectors.append(torch.cat(parts).requires_grad_())
    loss = loss_fn(*vectors)
    loss.backward()
    for chunks, side_states, side in zip(sides, states, vectors, strict=True):
        grads = side.grad.split([len(chunk["input_ids"]) for chunk in chunks])
        for chunk, state, grad in zip(chunks, side_states, grads, strict=True):
            with state.replay():
                embed(chunk).backward(grad)
    return loss.item()
