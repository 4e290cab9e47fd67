"""Load test of `ragkit serve` on loopback: requests/s and latency at 1, 8 and 32 concurrent clients.

    python benchmarks/serve_load.py                  # built-in encoder, the quickstart index
    python benchmarks/serve_load.py --seconds 3 --concurrency 1 4 --out /tmp/load.md   # smoke

For each setting (dynamic batching on, then off) a server is started as a user starts it
(`ragkit serve --index DIR`, a separate process), then clients post real short texts (Cranfield's
queries) to /v1/embeddings, one text a request, and questions to /v1/search, k 10, the index's
default mode. Each (endpoint, concurrency) runs for `--seconds` or `--requests`, whichever ends
first. Every response is checked: a non-200 or a wrong body counts as failed. Client and server
share the machine's cores, so run it on an idle machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "corpus"
RAGKIT = [sys.executable, "-c", "from ragkit.cli.app import main; main()"]


def texts() -> list[str]:
    rows = (DATA / "cranfield" / "queries.jsonl").read_text().splitlines()
    return [json.loads(row)["text"] for row in rows]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(index: Path, batching: bool) -> tuple[subprocess.Popen, str]:
    port = free_port()
    flag = "--batching" if batching else "--no-batching"
    # The server writes its log there until it stops: no context manager.
    log = tempfile.NamedTemporaryFile("w", prefix=f"ragkit-{flag[2:]}-", suffix=".log", delete=False)  # noqa: SIM115
    server = subprocess.Popen(
        [*RAGKIT, "serve", "--index", str(index), "--port", str(port), flag],
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited; see {log.name}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return server, url
        except httpx.HTTPError:
            time.sleep(0.5)
    server.kill()
    raise SystemExit("the server did not start in 180 s")


async def load(
    url: str, endpoint: str, model: str, clients: int, requests: int, seconds: float, pool: list[str], k: int
) -> dict:
    latencies: list[float] = []
    failed = 0
    sent = 0
    deadline = time.monotonic() + seconds

    def body(i: int) -> dict:
        text = pool[i % len(pool)]
        if endpoint == "embeddings":
            return {"model": model, "input": text}
        return {"query": text, "k": k}

    def good(response: httpx.Response) -> bool:
        if response.status_code != 200:
            return False
        data = response.json()
        return len(data["data"]) == 1 if endpoint == "embeddings" else len(data["results"][0]["hits"]) == k

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal sent, failed
        while sent < requests and time.monotonic() < deadline:
            i = sent
            sent += 1
            start = time.perf_counter()
            try:
                response = await http.post(f"{url}/v1/{endpoint}", json=body(i))
                ok = good(response)
            except httpx.HTTPError:
                ok = False
            latencies.append(time.perf_counter() - start)
            failed += not ok

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=120, limits=limits) as http:
        began = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        elapsed = time.perf_counter() - began
    p50, p99 = np.percentile(latencies, [50, 99]) * 1000
    return {
        "endpoint": endpoint,
        "clients": clients,
        "requests": len(latencies),
        "failed": failed,
        "rps": len(latencies) / elapsed,
        "p50_ms": float(p50),
        "p99_ms": float(p99),
    }


def ensure_index(path: Path) -> Path:
    if not (path / "manifest.json").exists():
        subprocess.run([*RAGKIT, "index", str(EXAMPLES), "--index", str(path)], check=True)
    return path


def chart(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, endpoint in zip(axes, ("embeddings", "search"), strict=True):
        for batching, style in ((True, "-o"), (False, "--s")):
            points = [r for r in rows if r["endpoint"] == endpoint and r["batching"] == batching]
            ax.plot(
                [r["clients"] for r in points],
                [r["rps"] for r in points],
                style,
                label=f"batching {'on' if batching else 'off'}",
            )
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrent clients")
        ax.set_ylabel("requests / s")
        ax.set_ylim(bottom=0)
        ax.set_title(f"/v1/{endpoint}")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("ragkit serve on loopback (built-in encoder, CPU)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, default=Path("ragkit-index"))
    parser.add_argument("--concurrency", type=int, nargs="*", default=[1, 8, 32])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=RESULTS / "serve_load.md")
    args = parser.parse_args()

    index = ensure_index(args.index)
    pool = texts()
    rows = []
    for batching in (True, False):
        server, url = start_server(index, batching)
        try:
            model = httpx.get(f"{url}/v1/models").json()["data"][0]["id"]
            k = min(10, httpx.get(f"{url}/health").json()["chunks"])
            for endpoint in ("embeddings", "search"):
                asyncio.run(load(url, endpoint, model, 2, 8, 30, pool, k))  # warm-up
                for clients in args.concurrency:
                    row = asyncio.run(
                        load(url, endpoint, model, clients, args.requests, args.seconds, pool, k)
                    )
                    row["batching"] = batching
                    rows.append(row)
                    print(json.dumps(row), flush=True)
            batches = httpx.get(f"{url}/health").json()["batching"]["batches"]
            print(f"batching {'on' if batching else 'off'}: {batches} encode calls", flush=True)
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=30)

    lines = [
        "# Serve load test",
        "",
        f"`python benchmarks/serve_load.py` on {os.cpu_count()} CPU cores, loopback, client and server "
        f"on one machine: `ragkit serve --index {index}` (built-in encoder), one short real text per "
        "embeddings request, k 10 (at most the index's chunks) per search in the index's default mode; "
        f"{args.seconds:g} s or {args.requests} requests per row.",
        "",
        "| endpoint | batching | clients | requests | failed | requests/s | p50 ms | p99 ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| /v1/{r['endpoint']} | {'on' if r['batching'] else 'off'} | {r['clients']} | "
            f"{r['requests']} | {r['failed']} | {r['rps']:.1f} | {r['p50_ms']:.0f} | {r['p99_ms']:.0f} |"
        )
    lines.append("")
    for endpoint in ("embeddings", "search"):
        top = max(args.concurrency)
        on, off = (
            next(r for r in rows if r["endpoint"] == endpoint and r["clients"] == top and r["batching"] is b)
            for b in (True, False)
        )
        lines.append(
            f"- /v1/{endpoint} at {top} clients: batching gives {on['rps'] / off['rps']:.2f}x the requests/s."
        )
    args.out.write_text("\n".join(lines) + "\n")
    args.out.with_suffix(".json").write_text(json.dumps(rows, indent=2) + "\n")
    chart(rows, args.out.with_suffix(".png"))
    print(args.out.read_text())


if __name__ == "__main__":
    main()
