"""What users of a bf16 device get.

Every CPU with AVX-512 bf16 or AMX, and every GPU, encodes in bf16 by default, while the rest of the
suite pins fp32 for its exact comparisons (tests/conftest.py). Here the CPU reports avx512_bf16 in
its flags, as such a machine's does, and nothing pins the precision: the encoder, an index's build,
calibration, update and queries, and the server run in the default they would run in there (where
this CPU lacks bf16 it is emulated: the same values, only slower). Each is held to what the fp32 suite
proves, within bf16 rounding.
"""

from __future__ import annotations

import gzip
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import SENTENCES, requires_shared_data, shared_folder, tiny_encoder, write_beir

from ragkit import Encoder
from ragkit.corpus import document_text
from ragkit.encoders import precision
from ragkit.encoders.precision import BF16Linear
from ragkit.index import Index, Retriever
from ragkit.index.manifest import IndexManifest

pytestmark = requires_shared_data


@pytest.fixture(scope="module", autouse=True)
def bf16_device(tmp_path_factory):
    """/proc/cpuinfo as a CPU with AVX-512 bf16 writes it, and no precision pinned."""
    cpuinfo = tmp_path_factory.mktemp("cpu") / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512bw avx512_bf16\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(precision, "CPUINFO", cpuinfo)
        patch.delenv(precision.PRECISION_ENV, raising=False)
        assert precision.default_precision(torch.device("cpu")) == "bf16"
        yield


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    return tiny_encoder("llama").save(tmp_path_factory.mktemp("bf16") / "tiny")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Forty SciFact abstracts, a file each: enough sentences for the index to calibrate on."""
    root = tmp_path_factory.mktemp("corpus")
    with gzip.open(shared_folder("scifact") / "corpus.jsonl.gz", "rt") as f:
        for row in map(json.loads, itertools.islice(f, 40)):
            (root / f"{row['_id']}.txt").write_text(f"{row['title']}\n\n{row['text']}")
    return root


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1)


def test_the_default_encoder_computes_in_bf16_and_batches_and_pads_within_rounding(saved, tmp_path):
    encoder = Encoder.load(saved)
    assert encoder.precision == "bf16"
    assert any(isinstance(m, BF16Linear) for m in encoder.model.modules())
    batched = encoder.encode(SENTENCES, batch_size=8)  # padded to the longest
    alone = np.concatenate([encoder.encode([text]) for text in SENTENCES])  # no padding
    assert cosines(alone, batched).min() > 0.999
    left = tiny_encoder("llama", padding_side="left").save(tmp_path / "left")  # the same weights
    assert cosines(Encoder.load(left).encode(SENTENCES, batch_size=8), batched).min() > 0.999
    fp32 = Encoder.load(saved, precision="fp32").encode(SENTENCES)
    assert cosines(batched, fp32).min() > 0.99


@pytest.fixture(scope="module")
def built(saved, corpus, tmp_path_factory) -> tuple[Path, Path]:
    """The corpus indexed in the default precision (bf16 here) and, for reference, in fp32."""
    root = tmp_path_factory.mktemp("indexes")
    Index.build(corpus, Encoder.load(saved), root / "bf16", show_progress=False)
    Index.build(corpus, Encoder.load(saved, precision="fp32"), root / "fp32", show_progress=False)
    return root / "bf16", root / "fp32"


QUERIES = ["vitamin D deficiency", "gene expression in cancer cells", "antibiotic resistance", "sleep"]


def test_an_index_builds_calibrates_and_ranks_in_bf16_as_in_fp32(built):
    bf16_dir, fp32_dir = built
    manifest = IndexManifest.read(bf16_dir)
    assert manifest.precision == "bf16"
    assert manifest.calibration is not None  # calibrated on its own pseudo-queries, in bf16
    bf16, fp32 = Retriever.load(bf16_dir), Retriever.load(fp32_dir)  # each loads its own encoder
    assert (bf16.encoder.precision, fp32.encoder.precision) == ("bf16", "fp32")
    differences = []
    for query in QUERIES:
        a = bf16.search(query, k=5, mode="dense")
        b = fp32.search(query, k=5, mode="dense")
        assert len({h.chunk_id for h in a} & {h.chunk_id for h in b}) >= 4, query
        differences.append(abs(a[0].score - b[0].score))
    assert 0 < max(differences) < 0.01  # bf16 did compute, and only rounding tells the two apart


def test_an_update_in_bf16_keeps_vectors_a_fresh_encoding_finds(saved, built, corpus, tmp_path):
    import shutil

    bf16_dir = tmp_path / "idx"
    shutil.copytree(built[0], bf16_dir)
    added = corpus.parent / "added"
    shutil.copytree(corpus, added)
    new = "Zebrafish regenerate their heart muscle after injury, unlike adult mammals."
    (added / "zebrafish.txt").write_text(new)
    Index.build(
        added, Encoder.load(IndexManifest.read(bf16_dir).encoder_config()), bf16_dir, show_progress=False
    )
    assert IndexManifest.read(bf16_dir).generation == 2
    retriever = Retriever.load(bf16_dir)
    (chunk,) = retriever.search("zebrafish heart", k=1, mode="bm25")
    assert chunk.path == "zebrafish.txt"
    # The new chunk's stored vector and its encoding now agree to bf16 rounding.
    vector = retriever.encoder.encode_documents([document_text(chunk.title, chunk.text)])
    (hit,) = retriever.search(new, k=1, mode="dense", query_vectors=vector)
    assert hit.chunk_id == chunk.chunk_id and hit.score > 0.999


def test_the_server_embeds_and_searches_in_bf16(built):
    pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install 'ragkit[serve]'")
    from fastapi.testclient import TestClient

    from ragkit.serve import ServeConfig, create_app

    retriever = Retriever.load(built[0])
    app = create_app(retriever=retriever, config=ServeConfig(model_name="tiny"))
    with TestClient(app) as client:
        response = client.post("/v1/embeddings", json={"model": "tiny", "input": SENTENCES})
        served = np.array([row["embedding"] for row in response.json()["data"]], dtype=np.float32)
        found = client.post("/v1/search", json={"query": QUERIES[0], "k": 3, "mode": "dense"}).json()
    assert response.status_code == 200
    assert cosines(served, retriever.encoder.encode_documents(SENTENCES)).min() > 0.999
    expected = [h.chunk_id for h in retriever.search(QUERIES[0], k=3, mode="dense")]
    assert [h["chunk_id"] for h in found["results"][0]["hits"]] == expected


def test_eval_scores_in_bf16_as_in_fp32_and_never_reuses_fp32_vectors(saved, tmp_path, monkeypatch):
    from ragkit.eval import DenseSearch, evaluate, load_task
    from ragkit.eval.models import load_eval_model

    monkeypatch.setenv("RAGKIT_HOME", str(tmp_path / "home"))  # an empty embedding cache

    def run(**options):
        task = load_task(write_beir(tmp_path / "toy"))
        model = load_eval_model(str(saved), **options)
        search = DenseSearch(model, show_progress=False)
        (row,) = evaluate([search], [task], output=None)
        return model, row, search

    bf16, bf16_row, _ = run()
    fp32, fp32_row, search = run(precision="fp32")
    assert (bf16.model.precision, fp32.model.precision) == ("bf16", "fp32")
    assert search.cached_documents == 0  # the bf16 run's vectors are not the fp32 run's
    assert abs(bf16_row.ndcg_at_10 - fp32_row.ndcg_at_10) < 0.02


def test_export_on_a_bf16_device_writes_the_fp32_model_that_gives_the_encoders_vectors(saved, tmp_path):
    from sentence_transformers import SentenceTransformer
    from typer.testing import CliRunner

    from ragkit.cli.app import app

    result = CliRunner().invoke(app, ["export", str(tmp_path / "st"), "--model", str(saved)])
    assert result.exit_code == 0, result.output
    exported = SentenceTransformer(str(tmp_path / "st"), trust_remote_code=True, device="cpu")
    encoder = Encoder.load(saved)  # bf16, as this device's users encode
    vectors = exported.encode_document(SENTENCES, normalize_embeddings=True)
    assert cosines(vectors, Encoder.load(saved, precision="fp32").encode(SENTENCES)).min() > 0.9999
    assert cosines(vectors, encoder.encode_documents(SENTENCES)).min() > 0.99
