"""An index of 300 real Cranfield abstracts (../shared/data), built with a tiny encoder."""

from __future__ import annotations

import gzip
import itertools
import json
from pathlib import Path

import pytest
from helpers import shared_folder, tiny_encoder

from ragkit.index import Index, Retriever


@pytest.fixture(scope="session")
def encoder():
    return tiny_encoder("llama", query_instruction="Find the passage: ")


@pytest.fixture(scope="session")
def cranfield_index(encoder, tmp_path_factory) -> Path:
    folder = shared_folder("cranfield")
    with gzip.open(folder / "corpus.jsonl.gz", "rt") as f:
        rows = [json.loads(line) for line in itertools.islice(f, 300)]
    directory = tmp_path_factory.mktemp("integrations") / "cranfield"
    Index.open(directory, encoder).add(
        {"id": r["_id"], "title": r.get("title", ""), "text": r["text"], "metadata": {"n": i}}
        for i, r in enumerate(rows)
    )
    return directory


@pytest.fixture(scope="session")
def retriever(cranfield_index, encoder) -> Retriever:
    return Retriever.load(cranfield_index, encoder=encoder)
