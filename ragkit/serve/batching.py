"""Dynamic batching: concurrent requests share one `encode` call instead of queuing one by one.

A server thread takes the first waiting request, then gathers more for at most `max_wait_ms` or
until `max_batch` texts, and encodes each kind of text (queries, documents) in one call. On a CPU
or GPU a batch of 32 short texts costs little more than one, so throughput rises with concurrency.
With `enabled=False` each request is encoded on its own, in arrival order (the baseline).

A request of more than `max_batch` texts is encoded `max_batch` texts at a time, taking turns with
the requests that arrive meanwhile, so a large request never makes a small one wait for all of it.
A batch that fails is retried request by request, so one bad text fails only its own request. A
request whose client left (its awaiting task cancelled) costs nothing from the next batch on: its
queued texts are dropped, and a large one stops at the next batch boundary.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass, field

import numpy as np

# kind -> texts -> (vectors, token count of each text); the server encodes "query" and "document".
EncodeFunction = Callable[[str, list[str]], tuple[np.ndarray, list[int]]]


@dataclass
class _Request:
    kind: str
    texts: list[str]
    future: Future = field(default_factory=Future)
    abandoned: bool = False  # its client left: encode no more of it
    started: bool = False  # its future runs (set_running_or_notify_cancel was called)
    done: int = 0  # texts encoded so far (the first ones)
    vectors: list[np.ndarray] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)

    @property
    def left(self) -> int:
        return len(self.texts) - self.done


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
        self._stopped = False  # the worker took the stop sentinel
        self._worker = threading.Thread(target=self._run, name="ragkit-batcher", daemon=True)
        self._worker.start()

    def submit(self, kind: str, texts: Sequence[str]) -> Future:
        """A future of (vectors, token counts) for `texts`."""
        return self._submit(kind, texts).future

    def _submit(self, kind: str, texts: Sequence[str]) -> _Request:
        request = _Request(kind, list(texts))
        self._count(len(request.texts))
        self._queue.put(request)
        return request

    async def encode(self, kind: str, texts: Sequence[str]) -> tuple[np.ndarray, list[int]]:
        """`submit`, awaited: the event loop serves other requests meanwhile. Cancelling the awaiting
        task (a client that left) drops the request's texts not yet encoded."""
        request = self._submit(kind, texts)
        try:
            return await asyncio.wrap_future(request.future)
        except asyncio.CancelledError:
            request.abandoned = True
            raise

    def _count(self, texts: int) -> None:
        with self._lock:
            self.pending_texts += texts

    def close(self) -> None:
        """Stop the worker thread after the requests already queued."""
        self._queue.put(None)
        self._worker.join(timeout=10)

    def _run(self) -> None:
        carried: deque[_Request] = deque()  # requests that did not fit the last batch
        unfinished: deque[_Request] = deque()  # large requests partly encoded, taking turns
        while True:  # after the stop sentinel `_get` gives nothing: what is left is finished, then return
            first = carried.popleft() if carried else None
            if first is None:  # new requests first, then a large one's next part
                first = self._get(block=not unfinished)
            if first is None and not unfinished:
                return
            first = first or unfinished.popleft()
            batch, size = [first], min(first.left, self.max_batch)
            deadline = time.monotonic() + self.max_wait
            while self.enabled and size < self.max_batch:
                request = self._get(block=True, timeout=max(0.0, deadline - time.monotonic()))
                if request is None:
                    break
                if size + request.left > self.max_batch:
                    carried.append(request)  # starts the next batch
                    break
                batch.append(request)
                size += request.left
            self._encode(batch)
            unfinished.extend(r for r in batch if r.left and not r.future.done())

    def _get(self, block: bool, timeout: float | None = None) -> _Request | None:
        """The next queued request; None when there is none (in time) or the stop sentinel came
        (`_stopped`, which stays set)."""
        if self._stopped:
            return None
        try:
            request = self._queue.get(block=block, timeout=timeout)
        except queue.Empty:
            return None
        if request is None:
            self._stopped = True
        return request

    def _encode(self, batch: list[_Request]) -> None:
        """One batch: each request's next texts (the first request's up to `max_batch`, the others'
        all of them), encoded per kind; a request whose client left is dropped here."""
        for kind in dict.fromkeys(r.kind for r in batch):  # arrival order of kinds
            group = []
            for request in (r for r in batch if r.kind == kind):
                if not request.started and not request.future.set_running_or_notify_cancel():
                    request.abandoned = True  # cancelled while it waited
                request.started = True
                if request.abandoned:  # its client is gone: none of its texts are encoded
                    self._fail(request, CancelledError())
                    continue
                group.append(request)
            if not group:
                continue
            parts = [(r, min(r.left, self.max_batch)) for r in group]
            try:
                self._encode_group(kind, parts)
            except BaseException as error:
                if len(parts) == 1:
                    self._fail(group[0], error)
                    continue
                for part in parts:  # find the request that fails: the others still get vectors
                    try:
                        self._encode_group(kind, [part])
                    except BaseException as own_error:  # each request gets its own error; the worker lives on
                        self._fail(part[0], own_error)

    def _fail(self, request: _Request, error: BaseException) -> None:
        """No more of `request` is encoded; its future gets `error` (unless it was cancelled)."""
        self._count(-request.left)
        request.done = len(request.texts)
        if not request.future.done():
            request.future.set_exception(error)

    def _encode_group(self, kind: str, parts: list[tuple[_Request, int]]) -> None:
        texts = [t for r, n in parts for t in r.texts[r.done : r.done + n]]
        vectors, counts = self.encode_function(kind, texts)
        self.batches += 1
        if self.on_batch is not None:
            self.on_batch(len(texts))
        start = 0
        for request, n in parts:
            request.vectors.append(vectors[start : start + n])
            request.counts.extend(counts[start : start + n])
            request.done += n
            start += n
            self._count(-n)
            if not request.left:
                request.future.set_result((np.concatenate(request.vectors), request.counts))
