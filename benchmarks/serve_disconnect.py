"""A client that leaves mid-request must not hold up the next one: `ragkit serve` on loopback, a
2,000-text /v1/embeddings request whose client gives up after 2 s, then one text, timed.

    python benchmarks/serve_disconnect.py            # built-in encoder; writes results/serve_disconnect.md

Before ragkit dropped a departed client's texts (and stopped its batches at the next boundary), the
one text waited for all 2,000 to be encoded. The server runs as a user starts it (`ragkit serve`, a
separate process, no index); client and server share the machine's cores.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

RESULTS = Path(__file__).resolve().parent / "results"
RAGKIT = [sys.executable, "-c", "from ragkit.cli.app import main; main()"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=2000, help="texts in the request the client leaves")
    parser.add_argument("--leave-after", type=float, default=2.0, help="seconds before the client leaves")
    parser.add_argument("--out", type=Path, default=RESULTS / "serve_disconnect.md")
    args = parser.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([*RAGKIT, "serve", "--port", str(port), "--quiet"], stdout=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        model = _wait_for(base)

        def body(n: int) -> dict:
            return {"model": model, "input": [f"sentence {i} about bees and honey" for i in range(n)]}

        idle = _timed(lambda: httpx.post(f"{base}/v1/embeddings", json=body(1), timeout=60))
        with contextlib.suppress(httpx.TimeoutException):
            httpx.post(f"{base}/v1/embeddings", json=body(args.texts), timeout=args.leave_after)
        after = _timed(lambda: httpx.post(f"{base}/v1/embeddings", json=body(1), timeout=600))
        queued = httpx.get(f"{base}/health").json()["batching"]["queued_texts"]
    finally:
        server.terminate()
        server.wait()
    lines = [
        "# A departed client's request and the next one",
        "",
        f"`python benchmarks/serve_disconnect.py`: built-in encoder, {args.texts} texts, the client "
        f"leaves after {args.leave_after:g} s.",
        "",
        "| one-text request | seconds |",
        "|---|---|",
        f"| on an idle server | {idle:.2f} |",
        f"| right after the client left | {after:.2f} |",
        "",
        f"Texts still queued afterwards: {queued}.",
    ]
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _wait_for(base: str) -> str:
    for _ in range(600):
        try:
            return httpx.get(f"{base}/health", timeout=1).json()["model"]
        except (httpx.HTTPError, KeyError, ValueError):
            time.sleep(0.5)
    raise SystemExit("the server did not start")


def _timed(call) -> float:
    start = time.perf_counter()
    call().raise_for_status()
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
