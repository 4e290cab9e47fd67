"""Two processes over gloo: gathered negatives and averaged gradients equal one process on the whole batch."""

from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from test_gradcache import _gradient, fp32_noise

from ragkit.adapt.distributed import average_gradients, gather, init_world


def _rank(rank: int, size: int, tmp: str, queue) -> None:
    os.environ.update(
        WORLD_SIZE=str(size),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=os.environ["TEST_MASTER_PORT"],
    )
    torch.set_num_threads(1)
    from pathlib import Path

    world = init_world()
    try:
        x = torch.tensor([float(rank + 1)], requires_grad=True)
        both = gather(x, world)
        weights = torch.tensor([1.0, 10.0]) * (100.0 if rank else 1.0)  # rank 0: [1, 10], rank 1: [100, 1000]
        (both * weights).sum().backward()
        gathered_grad = x.grad.item()
        directory = Path(tmp) / f"rank{rank}"
        directory.mkdir()
        grad = _gradient(directory, micro=2, world=world, batch_size=8)  # 4 rows per rank, chunks of 2
        params = [torch.nn.Parameter(grad.clone())]
        params[0].grad = grad.clone()
        average_gradients(params, world)
        queue.put((rank, both.detach().tolist(), gathered_grad, params[0].grad))
    finally:
        dist.destroy_process_group()


def test_two_gloo_processes_match_one_process(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        os.environ["TEST_MASTER_PORT"] = str(s.getsockname()[1])
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_rank, args=(r, 2, str(tmp_path), queue)) for r in range(2)]
    for p in procs:
        p.start()
    results = dict((r, rest) for r, *rest in (queue.get(timeout=120) for _ in procs))
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert results[0][0] == results[1][0] == [1.0, 2.0]  # every rank sees every rank's vectors, in order
    # Each rank's vector gets the gradient of both ranks' losses: 1 + 100 and 10 + 1000.
    assert results[0][1] == 101.0 and results[1][1] == 1010.0
    (tmp_path / "single").mkdir()
    single = _gradient(tmp_path / "single", micro=8, batch_size=8)
    torch.testing.assert_close(results[0][2], results[1][2])
    torch.testing.assert_close(results[0][2], single, rtol=1e-4, atol=fp32_noise(single))


if __name__ == "__main__":
    pytest.main([__file__])
