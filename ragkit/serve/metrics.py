"""What the server has done, in Prometheus' text format (GET /metrics): requests by route and status,
their latency, the texts per encode call, and the texts waiting to be encoded.

Written out by hand (the format is a few lines of text) rather than with prometheus_client, so that
serving needs nothing more. Counts are per process.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Sequence

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class Histogram:
    """Cumulative buckets, a sum and a count, per label set."""

    def __init__(self, buckets: Sequence[float]) -> None:
        self.buckets = tuple(buckets)
        self.counts: dict[tuple, list[int]] = {}
        self.sums: dict[tuple, float] = {}

    def observe(self, labels: tuple, value: float) -> None:
        """Count `value` in every bucket it falls under, for the series `labels`."""
        counts = self.counts.setdefault(labels, [0] * (len(self.buckets) + 1))
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                counts[i] += 1
        counts[-1] += 1  # +Inf
        self.sums[labels] = self.sums.get(labels, 0.0) + value

    def lines(self, name: str, label_names: tuple[str, ...]) -> list[str]:
        """The histogram in Prometheus' text format: cumulative buckets, sum and count per series."""
        out = []
        for labels, counts in sorted(self.counts.items()):
            pairs = _pairs(label_names, labels)
            for bound, count in zip((*map(_number, self.buckets), "+Inf"), counts, strict=True):
                bucket_labels = ",".join([*pairs, f'le="{bound}"'])
                out.append(f"{name}_bucket{{{bucket_labels}}} {count}")
            suffix = f"{{{','.join(pairs)}}}" if pairs else ""
            out.append(f"{name}_sum{suffix} {_number(self.sums[labels])}")
            out.append(f"{name}_count{suffix} {counts[-1]}")
        return out


class Metrics:
    """Thread-safe counters of one server; `render()` is the /metrics body.

    `queued_texts`: a callable for the gauge of texts waiting in the batcher (read at render time).
    """

    def __init__(self, queued_texts: Callable[[], int] = lambda: 0) -> None:
        self._lock = threading.Lock()
        self.requests: Counter[tuple[str, str, str]] = Counter()
        self.latency = Histogram(LATENCY_BUCKETS)
        self.batch_sizes = Histogram(BATCH_BUCKETS)
        self.queued_texts = queued_texts

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one finished request and its latency."""
        with self._lock:
            self.requests[(method, route, str(status))] += 1
            self.latency.observe((method, route), seconds)

    def observe_batch(self, texts: int) -> None:
        """Count one shared encode call and how many texts it held."""
        with self._lock:
            self.batch_sizes.observe((), texts)

    def render(self) -> str:
        """Every metric in Prometheus' text format, for GET /metrics."""
        with self._lock:
            lines = [
                "# HELP ragkit_requests_total HTTP requests, by method, route and status.",
                "# TYPE ragkit_requests_total counter",
                *(
                    f"ragkit_requests_total{{{_labels(('method', 'route', 'status'), key)}}} {n}"
                    for key, n in sorted(self.requests.items())
                ),
                "# HELP ragkit_request_seconds Time to answer a request, by method and route.",
                "# TYPE ragkit_request_seconds histogram",
                *self.latency.lines("ragkit_request_seconds", ("method", "route")),
                "# HELP ragkit_batch_texts Texts per encode call of the dynamic batcher.",
                "# TYPE ragkit_batch_texts histogram",
                *self.batch_sizes.lines("ragkit_batch_texts", ()),
                "# HELP ragkit_queued_texts Texts waiting to be encoded.",
                "# TYPE ragkit_queued_texts gauge",
                f"ragkit_queued_texts {self.queued_texts()}",
            ]
        return "\n".join(lines) + "\n"


def _pairs(names: tuple[str, ...], values: tuple) -> list[str]:
    escaped = (str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") for v in values)
    return [f'{name}="{value}"' for name, value in zip(names, escaped, strict=True)]


def _labels(names: tuple[str, ...], values: tuple) -> str:
    return ",".join(_pairs(names, values))


def _number(value: float) -> str:
    return repr(float(value))
