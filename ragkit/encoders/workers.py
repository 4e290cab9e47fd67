"""Encoding on several devices at once: one worker process per device, each with its own model.

`Encoder.encode(..., devices=["cuda:0", "cuda:1"])` (or `Encoder.load(..., devices=...)`, `--devices`
on the command line) starts an `EncoderPool` once and keeps it: the model is handed to each worker
when it starts (CPU weights through shared memory, no copy; a GPU worker moves them to its device),
never per batch. Texts are dealt to the workers in length-sorted order, round robin, so each gets
an equal share of long and short ones; each worker batches its share as `encode` does; vectors come
back in input order. CPU workers split the machine's threads between them.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from ragkit.device import resolve_device
from ragkit.errors import RagkitError
from ragkit.progress import progress_bar

if TYPE_CHECKING:
    from ragkit.encoders.encoder import Encoder

PIECE = 512  # texts per message to a worker: progress and memory in steps of this size


def resolve_devices(devices: str | Sequence[str] | None) -> list[str] | None:
    """None, "all" (every GPU, else the CPU), "cpu,cpu" or a list -> device names (None: one process)."""
    if devices is None:
        return None
    if isinstance(devices, str):
        if devices == "all":
            count = torch.cuda.device_count()
            return [f"cuda:{i}" for i in range(count)] if count else ["cpu"]
        devices = [d.strip() for d in devices.split(",") if d.strip()]
    if not devices:
        raise RagkitError("`devices` is empty: name devices (cpu, cuda:0, ...) or pass 'all'")
    return [str(resolve_device(d)) for d in devices]


class EncoderPool:
    """Worker processes, one per device, each encoding with its own copy of an encoder's model."""

    def __init__(self, encoder: Encoder, devices: Sequence[str]) -> None:
        context = torch.multiprocessing.get_context("spawn")
        self.devices = list(devices)
        cpu_workers = sum(d == "cpu" for d in self.devices)
        threads = max(1, (os.cpu_count() or 1) // max(cpu_workers, 1))
        self.inboxes = [context.Queue() for _ in self.devices]
        self.outbox = context.Queue()
        self.processes = [
            context.Process(
                target=_work,
                args=(encoder, device, threads, inbox, self.outbox),
                daemon=True,
                name=f"ragkit-{device}",
            )
            for device, inbox in zip(self.devices, self.inboxes, strict=True)
        ]
        for process in self.processes:
            process.start()
        self._jobs = itertools.count()

    def encode(self, texts: list[str], *, show_progress: bool = False, **options) -> np.ndarray:
        """Vectors for `texts` in input order; `options` as `Encoder.encode` takes them."""
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        shares = [order[w :: len(self.devices)] for w in range(len(self.devices))]
        pieces: dict[int, list[int]] = {}
        for worker, share in enumerate(shares):
            for first in range(0, len(share), PIECE):
                rows = share[first : first + PIECE]
                job = next(self._jobs)
                pieces[job] = rows
                self.inboxes[worker].put((job, [texts[i] for i in rows], options))
        out: np.ndarray | None = None
        error: BaseException | None = None
        bar = progress_bar("encoding", enabled=show_progress, transient=True)
        with bar:
            task = bar.add_task("encoding", total=len(texts))
            while pieces:
                job, result = self._receive()
                if job not in pieces:  # left over from an earlier call that failed: drop it
                    continue
                rows = pieces.pop(job)
                if isinstance(result, BaseException):
                    error = error or result  # every piece is still collected, so none is left over
                    continue
                if out is None:
                    out = np.empty((len(texts), result.shape[1]), dtype=np.float32)
                out[rows] = result
                bar.advance(task, len(rows))
        if error is not None:
            raise error
        assert out is not None  # Encoder.encode sends no empty list
        return out

    def _receive(self):
        while True:
            try:
                return self.outbox.get(timeout=5)
            except Exception:  # queue.Empty: check that every worker is still alive
                dead = [p.name for p in self.processes if not p.is_alive()]
                if dead:
                    self.close()
                    raise RagkitError(
                        f"encoder worker {dead[0]} died (out of memory?); encode again"
                    ) from None

    @property
    def alive(self) -> bool:
        """Whether every worker process is still running."""
        return all(p.is_alive() for p in self.processes)

    def close(self) -> None:
        """Ask the workers to stop, and kill those that do not within 10 s."""
        for inbox, process in zip(self.inboxes, self.processes, strict=True):
            if process.is_alive():
                inbox.put(None)
        for process in self.processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()


def _work(encoder: Encoder, device: str, threads: int, inbox, outbox) -> None:
    """A worker's life: move the model to its device, then encode what arrives until None."""
    if device == "cpu":
        torch.set_num_threads(threads)
    encoder.model.to(device)  # type: ignore[arg-type]  # transformers' decorated to() hides its self
    encoder.devices = None  # a worker encodes in-process
    while (message := inbox.get()) is not None:
        job, texts, options = message
        result: np.ndarray | RagkitError
        try:
            result = encoder.encode(texts, show_progress=False, **options)
        except Exception as error:  # sent back to the caller, the worker lives on
            result = RagkitError(f"encoding on {device} failed: {type(error).__name__}: {error}")
        outbox.put((job, result))
