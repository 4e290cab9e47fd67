"""Dynamic batching: concurrent requests share one `encode` call instead of queuing one by one.

A server thread takes the first waiting request, then gathers more for at most `max_wait_ms` or
until `max_batch` texts, and encodes each kind of text (queries, documents) in one call. On a CPU
or GPU a batch of 32 short texts costs little more than one, so throughput rises with concurrency.
With `enabled=False` each request is encoded on its own, in arrival order (the baseline).

A batch that fails is retried request by request, so one bad text fails only its own request. A
request whose future was cancelled before its batch ran (its client left) costs nothing.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

# kind -> texts -> (vectors, token count of each text); the server encodes "query" and "document".
EncodeFunction = Callable[[Hashable, list[str]], tuple[np.ndarray, list[int]]]


@dataclass
class _Request:
    kind: Hashable
    texts: list[str]
    future: Future = field(default_factory=Future)


class DynamicBatcher:
    """Encode requests from many threads or coroutines in shared batches, on one worker thread.

    Args:
        encode: encodes one kind of texts at once; returns their vectors and token counts.
        max_batch: at most this many texts per `encode` call (a larger request is encoded alone).
        max_wait_ms: how long the first request of a batch waits for company.
        enabled: False encodes each request alone, as it arrives.
        on_batch: called with the number of texts of each successful `encode` call (metrics).
    """

    def __init__(
        self,
        encode: EncodeFunction,
        *,
        max_batch: int = 64,
        max_wait_ms: float = 5.0,
        enabled: bool = True,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        if max_batch < 1 or max_wait_ms < 0:
            raise ValueError("max_batch must be at least 1 and max_wait_ms at least 0")
        self.encode_function = encode
        self.max_batch, self.max_wait = max_batch, max_wait_ms / 1000
        self.enabled = enabled
        self.on_batch = on_batch
        self.batches = 0  # encode calls made, for /health and the load test
        self.pending_texts = 0  # texts submitted and not yet encoded (or dropped)
        self._lock = threading.Lock()
        self._queue: queue.Queue[_Request | None] = queue.Queue()
        self._worker = threading.Thread(target=self._run, name="ragkit-batcher", daemon=True)
        self._worker.start()

    def submit(self, kind: Hashable, texts: Sequence[str]) -> Future:
        """A future of (vectors, token counts) for `texts`."""
        request = _Request(kind, list(texts))
        self._count(len(request.texts))
        self._queue.put(request)
        return request.future

    async def encode(self, kind: Hashable, texts: Sequence[str]) -> tuple[np.ndarray, list[int]]:
        """`submit`, awaited: the event loop serves other requests meanwhile. Cancelling the awaiting
        task (a client that left) cancels the request if its batch has not started."""
        return await asyncio.wrap_future(self.submit(kind, texts))

    def _count(self, texts: int) -> None:
        with self._lock:
            self.pending_texts += texts

    def close(self) -> None:
        """Stop the worker thread after the requests already queued."""
        self._queue.put(None)
        self._worker.join(timeout=10)

    def _run(self) -> None:
        carried: list[_Request | None] = []  # a request that did not fit the last batch
        while True:
            first = carried.pop() if carried else self._queue.get()
            if first is None:
                return
            batch, size = [first], len(first.texts)
            deadline = time.monotonic() + self.max_wait
            while self.enabled and size < self.max_batch:
                try:
                    request = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if request is None or size + len(request.texts) > self.max_batch:
                    carried.append(request)  # starts the next batch (None: stop after this one)
                    break
                batch.append(request)
                size += len(request.texts)
            self._encode(batch)

    def _encode(self, batch: list[_Request]) -> None:
        for kind in dict.fromkeys(r.kind for r in batch):  # arrival order of kinds
            group = []
            for request in (r for r in batch if r.kind == kind):
                if request.future.set_running_or_notify_cancel():
                    group.append(request)
                else:  # cancelled while it waited: its client is gone
                    self._count(-len(request.texts))
            if not group:
                continue
            try:
                self._encode_group(kind, group)
            except BaseException as error:
                if len(group) == 1:
                    group[0].future.set_exception(error)
                    continue
                for request in group:  # find the request that fails: the others still get vectors
                    try:
                        self._encode_group(kind, [request])
                    except BaseException as own_error:  # each request gets its own error; the worker lives on
                        request.future.set_exception(own_error)
            finally:
                self._count(-sum(len(r.texts) for r in group))

    def _encode_group(self, kind: Hashable, group: list[_Request]) -> None:
        vectors, counts = self.encode_function(kind, [t for r in group for t in r.texts])
        self.batches += 1
        if self.on_batch is not None:
            self.on_batch(sum(len(r.texts) for r in group))
        start = 0
        for request in group:
            end = start + len(request.texts)
            request.future.set_result((vectors[start:end], counts[start:end]))
            start = end
