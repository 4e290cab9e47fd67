"""Real vectors for index tests: LSA (TF-IDF + SVD) of the Cranfield collection in ../shared/data.

Cheap to compute on CPU, yet with the uneven, clustered structure of real text embeddings.
"""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter

import numpy as np
import pytest
from helpers import SHARED_DATA, tiny_encoder


def read_beir(name: str) -> tuple[list[dict], list[dict]]:
    folder = SHARED_DATA / name
    with gzip.open(folder / "corpus.jsonl.gz", "rt") as f:
        docs = [json.loads(line) for line in f]
    queries = [json.loads(line) for line in (folder / "queries.jsonl").read_text().splitlines()]
    return docs, queries


@pytest.fixture(scope="session")
def cranfield() -> tuple[list[dict], list[dict]]:
    if not (SHARED_DATA / "cranfield").is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent (it is present in CI)")
    return read_beir("cranfield")


@pytest.fixture(scope="session")
def lsa_vectors(cranfield) -> tuple[np.ndarray, np.ndarray]:
    """(1398, 128) document and (225, 128) query vectors, L2-normalised (2 empty documents left out)."""
    docs, queries = cranfield
    docs = [d for d in docs if (d["title"] + d["text"]).strip()]
    tokenize = lambda text: re.findall(r"[a-z]+", text.lower())  # noqa: E731
    doc_terms = [Counter(tokenize(d["title"] + " " + d["text"])) for d in docs]
    df = Counter(t for terms in doc_terms for t in terms)
    vocab = {t: i for i, t in enumerate(sorted(t for t, n in df.items() if n >= 2))}
    idf = np.log(len(docs) / np.array([df[t] for t in vocab], dtype=np.float32))

    def tfidf(bags):
        m = np.zeros((len(bags), len(vocab)), dtype=np.float32)
        for row, bag in enumerate(bags):
            for term, n in bag.items():
                if term in vocab:
                    m[row, vocab[term]] = 1 + np.log(n)
        return m * idf

    _, _, vt = np.linalg.svd(tfidf(doc_terms), full_matrices=False)
    basis = vt[:128].T
    d = tfidf(doc_terms) @ basis
    q = tfidf([Counter(tokenize(x["text"])) for x in queries]) @ basis
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return d.astype(np.float32), q.astype(np.float32)


@pytest.fixture
def encoder():
    """A random-weight tiny Llama encoder: index tests need its vectors to be stable, not good."""
    return tiny_encoder("llama")


@pytest.fixture
def corpus(tmp_path, cranfield):
    """40 real Cranfield abstracts, one .txt file each (test_build.py defines its own mix)."""
    docs, _ = cranfield
    root = tmp_path / "corpus"
    root.mkdir()
    for d in docs[:40]:
        (root / f"{d['_id']}.txt").write_text(d["text"])
    return root
