"""An index of the example corpus with a tiny encoder, the app over it, and a live server."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from helpers import tiny_encoder

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install 'ragkit[serve]'")

import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from ragkit.index import Index, Retriever
from ragkit.serve import ServeConfig, create_app

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "corpus"


@pytest.fixture(scope="session")
def encoder():
    return tiny_encoder("llama", query_instruction="Find the passage: ")


@pytest.fixture(scope="session")
def index_dir(encoder, tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("serve") / "idx"
    Index.build(EXAMPLES, encoder, directory, show_progress=False)
    return directory


@pytest.fixture(scope="session")
def retriever(index_dir, encoder) -> Retriever:
    return Retriever.load(index_dir, encoder=encoder)


@pytest.fixture
def client(retriever) -> Iterator[TestClient]:
    app = create_app(retriever=retriever, config=ServeConfig(model_name="tiny"))
    with TestClient(app) as test_client:  # runs the lifespan: the batcher stops at the end
        yield test_client


@contextmanager
def live_server(app: FastAPI) -> Iterator[str]:
    """`app` under a real uvicorn on a free loopback port; yields its base URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
