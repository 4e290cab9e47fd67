"""Reranking with a sentence-transformers CrossEncoder: a tiny random one, built here, reorders the
top hits of a search by its own scores, in the library, the CLI and the server alike."""

from __future__ import annotations

import pytest
import torch
import transformers
from fastapi.testclient import TestClient
from helpers import EXAMPLE_CORPUS, FAMILIES, run_ragkit, tiny_encoder, tiny_tokenizer

from ragkit import RagkitError
from ragkit.index import Index, Retriever
from ragkit.serve import ServeConfig, create_app

QUERY = "how do bees make honey"


@pytest.fixture(scope="module")
def cross_encoder_dir(tmp_path_factory):
    """A 2-layer random Llama with a one-score head, saved as a CrossEncoder directory."""
    directory = tmp_path_factory.mktemp("cross-encoder")
    torch.manual_seed(0)
    config = FAMILIES["llama"](num_labels=1, pad_token_id=0)
    transformers.AutoModelForSequenceClassification.from_config(config).save_pretrained(directory)
    tiny_tokenizer().save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    directory = tmp_path_factory.mktemp("rerank") / "idx"
    encoder = tiny_encoder()
    Index.build(EXAMPLE_CORPUS, encoder, directory, show_progress=False)
    return directory, encoder


def test_rerank_orders_the_top_hits_by_the_cross_encoders_scores(index, cross_encoder_dir):
    from sentence_transformers import CrossEncoder

    directory, encoder = index
    retriever = Retriever.load(directory, encoder=encoder)
    searched = retriever.search(QUERY, k=20)  # every chunk of the small corpus
    reranked = retriever.search(QUERY, k=3, rerank=str(cross_encoder_dir), rerank_top=20)
    scores = CrossEncoder(str(cross_encoder_dir)).predict([(QUERY, h.text) for h in searched])
    expected = sorted(zip(scores, searched, strict=True), key=lambda pair: -pair[0])[:3]
    assert [h.chunk_id for h in reranked] == [h.chunk_id for _, h in expected]
    assert [h.score for h in reranked] == pytest.approx([float(s) for s, _ in expected], abs=1e-5)
    by_id = {h.chunk_id: h.score for h in searched}
    assert all(h.retrieval_score == pytest.approx(by_id[h.chunk_id]) for h in reranked)
    # Only the search's top `rerank_top` (at least k) are read and reordered.
    top5 = retriever.search(QUERY, k=5, rerank=str(cross_encoder_dir), rerank_top=5)
    assert {h.chunk_id for h in top5} == {h.chunk_id for h in searched[:5]}


def test_bad_reranker_settings_are_one_line_errors(index, tmp_path):
    directory, encoder = index
    retriever = Retriever.load(directory, encoder=encoder)
    with pytest.raises(RagkitError, match="could not load the cross-encoder `rerank`"):
        retriever.search(QUERY, rerank=str(tmp_path / "missing"))
    with pytest.raises(RagkitError, match="`rerank_top` must be"):
        retriever.search(QUERY, rerank_top=0)
    with pytest.raises(RagkitError, match="`rerank` is empty"):
        retriever.search(QUERY, rerank="")


def test_a_model_that_is_not_a_cross_encoder_is_refused(index, tmp_path):
    """A causal LM (or an exported bi-encoder) would load with a new random head and reorder at random."""
    from helpers import tiny_decoder_dir

    directory, encoder = index
    retriever = Retriever.load(directory, encoder=encoder)
    causal = tiny_decoder_dir(tmp_path / "causal")
    with pytest.raises(RagkitError, match=r"is not a cross-encoder \(LlamaForCausalLM"):
        retriever.search(QUERY, rerank=str(causal))
    exported = encoder.export(tmp_path / "exported")
    with pytest.raises(RagkitError, match="is not a cross-encoder"):
        retriever.search(QUERY, rerank=str(exported))
    three = tmp_path / "nli"
    config = FAMILIES["llama"](num_labels=3, pad_token_id=0)
    transformers.AutoModelForSequenceClassification.from_config(config).save_pretrained(three)
    tiny_tokenizer().save_pretrained(three)
    with pytest.raises(RagkitError, match="with 3 outputs"):
        retriever.search(QUERY, rerank=str(three))


def test_the_server_reranks_with_the_cross_encoder_it_was_started_with(index, cross_encoder_dir):
    directory, encoder = index
    retriever = Retriever.load(directory, encoder=encoder)
    config = ServeConfig(model_name="tiny", rerank=str(cross_encoder_dir))
    with TestClient(create_app(None, retriever, config)) as client:
        body = {"query": QUERY, "k": 3, "rerank_top": 20}
        hits = client.post("/v1/search", json=body).json()["results"][0]["hits"]
        plain = client.post("/v1/search", json={**body, "rerank": False}).json()["results"][0]["hits"]
    expected = retriever.search(QUERY, k=3, rerank=str(cross_encoder_dir), rerank_top=20)
    assert [h["chunk_id"] for h in hits] == [h.chunk_id for h in expected]
    assert all(h["retrieval_score"] is not None for h in hits)
    assert [h["chunk_id"] for h in plain] == [h.chunk_id for h in retriever.search(QUERY, k=3)]
    with TestClient(create_app(None, retriever, ServeConfig(model_name="tiny"))) as client:
        refused = client.post("/v1/search", json={"query": QUERY, "rerank": True})
    assert refused.status_code == 400 and "no reranker" in refused.json()["error"]["message"]


def test_ragkit_query_reranks_and_says_so(index, cross_encoder_dir):
    directory, _ = index
    model = tiny_encoder().save(directory.parent / "tiny")
    built = run_ragkit(
        "index", str(EXAMPLE_CORPUS), "--index", str(directory.parent / "cli"), "-m", str(model)
    )
    assert built.returncode == 0, built.stderr
    result = run_ragkit(
        "query",
        QUERY,
        "--index",
        str(directory.parent / "cli"),
        "-k",
        "2",
        "--rerank",
        str(cross_encoder_dir),
    )
    assert result.returncode == 0, result.stderr
    said = " ".join(result.stdout.split())
    assert "reranked the top 50 with" in said
    # The setting searched with, and why: eight short articles are too few to calibrate on.
    assert "search: hybrid (weighted, dense weight" in said and "chosen on dev splits" in said
