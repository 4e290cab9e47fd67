"""Data parallelism under torchrun / accelerate launch, read from the environment they set.

Gradients are averaged by hand after each step rather than by a DistributedDataParallel wrapper:
only the LoRA weights train, so one flat all-reduce per step is cheap, and it stays correct when a
step runs several forward/backward passes (micro-batches, GradCache).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    """This process's place among torchrun's processes (one process: rank 0 of 1)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Whether this process writes checkpoints, logs and the saved encoder."""
        return self.rank == 0


def init_world(device: torch.device | None = None) -> World:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1); a single process otherwise."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World()
    if not dist.is_initialized():
        backend = "nccl" if device is not None and device.type == "cuda" else "gloo"
        dist.init_process_group(backend)
    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def step_seed(seed: int, step: int, world: World) -> int:
    """The seed of one rank's random draws at one step: a resumed run redraws exactly the same."""
    return seed * 1_000_003 + step * world.size + world.rank


def gather(x: torch.Tensor, world: World) -> torch.Tensor:
    """Every rank's `x`, concatenated in rank order, with gradients flowing back to their ranks."""
    if world.size == 1:
        return x
    return _GatherWithGrad.apply(x)


class _GatherWithGrad(torch.autograd.Function):
    """all_gather whose backward sums every rank's gradient for each rank's slice (equal sizes)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        n = grad.shape[0] // dist.get_world_size()
        return grad[dist.get_rank() * n : (dist.get_rank() + 1) * n]


def average_gradients(params: list[torch.nn.Parameter], world: World) -> None:
    """Average `params` gradients over all processes in one all-reduce (a missing gradient counts as 0)."""
    if world.size == 1:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world.size
    offset = 0
    for p, g in zip(params, grads, strict=True):
        p.grad = flat[offset : offset + g.numel()].view_as(g).clone()
        offset += g.numel()


def mean(value: float, world: World) -> float:
    """`value` averaged over every process (a loss to log)."""
    if world.size == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t)
    return t.item() / world.size


def barrier(world: World) -> None:
    """Wait for every process (no-op alone)."""
    if world.size > 1:
        dist.barrier()
