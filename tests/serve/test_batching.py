"""Dynamic batching: concurrent requests share encode calls, each gets exactly its own vectors."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from ragkit.serve import DynamicBatcher


class Recorder:
    """An encode function that records its calls; the first call waits until released, so that
    requests pile up behind it as they do behind a busy model."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []
        self.entered, self.release = threading.Event(), threading.Event()

    def __call__(self, kind: str, texts: list[str]) -> tuple[np.ndarray, list[int]]:
        if not self.calls:
            self.entered.set()
            self.release.wait(timeout=10)
        self.calls.append((kind, texts))
        vectors = np.array([[len(t), kind == "query"] for t in texts], dtype=np.float32)
        return vectors, [len(t) for t in texts]


def pile_up(batcher: DynamicBatcher, recorder: Recorder, requests: list[tuple[str, list[str]]]):
    """Submit `requests` while the first encode call is blocked, then let it go; their results."""
    first = batcher.submit("document", ["warm-up"])
    assert recorder.entered.wait(timeout=10)  # the worker is busy encoding the warm-up
    futures = [batcher.submit(kind, texts) for kind, texts in requests]
    recorder.release.set()
    first.result(timeout=10)
    return [f.result(timeout=10) for f in futures]


def test_waiting_requests_share_one_call_per_kind_and_get_their_own_rows():
    recorder = Recorder()
    batcher = DynamicBatcher(recorder, max_batch=64, max_wait_ms=50)
    requests = [("document", ["a", "bb"]), ("query", ["ccc"]), ("document", ["dddd"]), ("query", ["e", "ff"])]
    results = pile_up(batcher, recorder, requests)
    batcher.close()
    assert recorder.calls[1:] == [("document", ["a", "bb", "dddd"]), ("query", ["ccc", "e", "ff"])]
    for (kind, texts), (vectors, counts) in zip(requests, results, strict=True):
        assert vectors.tolist() == [[len(t), kind == "query"] for t in texts]
        assert counts == [len(t) for t in texts]


def test_a_batch_holds_at_most_max_batch_texts():
    recorder = Recorder()
    batcher = DynamicBatcher(recorder, max_batch=4, max_wait_ms=50)
    pile_up(batcher, recorder, [("document", ["x"] * 3)] * 3 + [("document", ["y"] * 9)])
    batcher.close()
    assert [len(texts) for _, texts in recorder.calls[1:]] == [3, 3, 3, 4, 4, 1]  # a larger one in parts


def test_a_large_request_takes_turns_with_the_requests_that_arrive_meanwhile():
    recorder = Recorder()
    batcher = DynamicBatcher(recorder, max_batch=4, max_wait_ms=0)
    large = batcher.submit("document", [f"t{i}" for i in range(40)])
    assert recorder.entered.wait(timeout=10)  # its first part is being encoded
    small = batcher.submit("query", ["how?"])
    recorder.release.set()
    vectors, counts = large.result(timeout=10)
    assert small.result(timeout=10)[0].shape == (1, 2)
    batcher.close()
    kinds = [kind for kind, _ in recorder.calls]
    assert (
        len(recorder.calls[0][1]) == 4 and kinds.index("query") == 1
    )  # right after the part that was running, not after all ten
    assert vectors.tolist() == [[len(f"t{i}"), 0] for i in range(40)] and len(counts) == 40


def test_a_departed_client_s_large_request_stops_at_the_next_batch_boundary():
    import asyncio

    recorder = Recorder()
    batcher = DynamicBatcher(recorder, max_batch=4, max_wait_ms=0)

    async def leave_mid_request():
        task = asyncio.ensure_future(batcher.encode("document", ["x"] * 2000))
        while not recorder.entered.is_set():
            await asyncio.sleep(0.01)
        task.cancel()  # the server does this when the client disconnects
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(leave_mid_request())
    recorder.release.set()
    after = batcher.submit("document", ["next"]).result(timeout=10)
    batcher.close()
    assert after[0].shape == (1, 2)
    assert [texts for _, texts in recorder.calls] == [["x"] * 4, ["next"]]  # the part running, then none
    assert batcher.pending_texts == 0


def test_without_batching_each_request_is_encoded_alone():
    recorder = Recorder()
    batcher = DynamicBatcher(recorder, max_batch=64, max_wait_ms=50, enabled=False)
    pile_up(batcher, recorder, [("document", ["a"]), ("document", ["b"]), ("document", ["c"])])
    batcher.close()
    assert [texts for _, texts in recorder.calls[1:]] == [["a"], ["b"], ["c"]]


def test_a_failing_text_fails_only_its_own_request_and_the_worker_lives_on():
    calls = []

    def encode(kind, texts):
        calls.append(texts)
        if "boom" in texts:
            raise RuntimeError("boom")
        return np.full((len(texts), 2), len(texts[0]), dtype=np.float32), [1] * len(texts)

    recorder = Recorder()  # holds the worker so that all three requests land in one batch
    batcher = DynamicBatcher(
        lambda kind, texts: recorder(kind, texts) if texts == ["warm-up"] else encode(kind, texts),
        max_batch=8,
        max_wait_ms=200,
    )
    first = batcher.submit("document", ["warm-up"])
    assert recorder.entered.wait(timeout=10)
    futures = [batcher.submit("document", [t]) for t in ("good", "boom", "fine!")]
    recorder.release.set()
    first.result(timeout=10)
    assert isinstance(futures[1].exception(timeout=10), RuntimeError)
    assert futures[0].result(timeout=10)[0].tolist() == [[4, 4]]  # its own vector, not its neighbour's error
    assert futures[2].result(timeout=10)[0].tolist() == [[5, 5]]
    assert calls[0] == ["good", "boom", "fine!"]  # tried together first, then one by one
    after = batcher.submit("document", ["later"]).result(timeout=10)
    batcher.close()
    assert after[0].shape == (1, 2) and batcher.pending_texts == 0


def test_a_cancelled_request_is_never_encoded():
    recorder = Recorder()
    batcher = DynamicBatcher(recorder, max_batch=64, max_wait_ms=50)
    first = batcher.submit("document", ["warm-up"])
    assert recorder.entered.wait(timeout=10)
    gone, kept = batcher.submit("document", ["left"] * 50), batcher.submit("document", ["stayed"])
    assert batcher.pending_texts == 52
    assert gone.cancel()  # what asyncio does to the future when the client's request task is cancelled
    recorder.release.set()
    first.result(timeout=10)
    assert kept.result(timeout=10)[0].shape == (1, 2)
    batcher.close()
    assert recorder.calls[1:] == [("document", ["stayed"])] and batcher.pending_texts == 0


def test_real_encoder_vectors_are_the_same_batched_or_not():
    from helpers import SENTENCES, tiny_encoder

    encoder = tiny_encoder()

    def encode(kind, texts):
        return encoder.encode(texts), [0] * len(texts)

    batcher = DynamicBatcher(encode, max_batch=16, max_wait_ms=20)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda s: batcher.submit("document", [s]).result(timeout=30), SENTENCES))
    batcher.close()
    np.testing.assert_allclose(np.vstack([v for v, _ in results]), encoder.encode(SENTENCES), atol=1e-5)
    assert batcher.batches < len(SENTENCES)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="max_batch"):
        DynamicBatcher(lambda k, t: (None, []), max_batch=0)
