"""An index of the example corpus with a tiny encoder, and the app over it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import EXAMPLE_CORPUS, tiny_encoder

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install 'ragkit[serve]'")

from fastapi.testclient import TestClient

from ragkit.index import Index, Retriever
from ragkit.serve import ServeConfig, create_app


@pytest.fixture(scope="session")
def encoder():
    return tiny_encoder("llama", query_instruction="Find the passage: ")


@pytest.fixture(scope="session")
def index_dir(encoder, tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("serve") / "idx"
    Index.build(EXAMPLE_CORPUS, encoder, directory, show_progress=False)
    return directory


@pytest.fixture(scope="session")
def retriever(index_dir, encoder) -> Retriever:
    return Retriever.load(index_dir, encoder=encoder)


@pytest.fixture
def client(retriever) -> Iterator[TestClient]:
    app = create_app(retriever=retriever, config=ServeConfig(model_name="tiny"))
    with TestClient(app) as test_client:  # runs the lifespan: the batcher stops at the end
        yield test_client
