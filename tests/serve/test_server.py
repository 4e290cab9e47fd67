"""The HTTP API: OpenAI's embeddings shapes, search, limits, keys and errors."""

from __future__ import annotations

import base64
from dataclasses import asdict

import numpy as np
import pytest
from fastapi.testclient import TestClient
from helpers import EXAMPLE_CORPUS, free_port, live_server, run_ragkit, tiny_encoder

from ragkit import Encoder
from ragkit.index import Index, Retriever
from ragkit.serve import ServeConfig, create_app

TEXTS = [
    "Photosynthesis turns light into chemical energy.",
    "The Bastille fell in July 1789.",
    "Brew at 93 C.",
]


def test_embeddings_equal_the_encoders_vectors_as_floats_and_base64(client, encoder):
    expected = encoder.encode(TEXTS)
    floats = client.post("/v1/embeddings", json={"model": "tiny", "input": TEXTS}).json()
    packed = client.post(
        "/v1/embeddings", json={"model": "tiny", "input": TEXTS, "encoding_format": "base64"}
    ).json()
    assert floats["object"] == "list" and floats["model"] == "tiny"
    assert [row["index"] for row in floats["data"]] == [0, 1, 2]
    np.testing.assert_allclose([row["embedding"] for row in floats["data"]], expected, atol=1e-6)
    decoded = [np.frombuffer(base64.b64decode(row["embedding"]), dtype="<f4") for row in packed["data"]]
    np.testing.assert_array_equal(decoded, expected)
    tokens = sum(len(ids) for ids in encoder.token_ids(TEXTS)[0])
    assert floats["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens}


def test_a_string_input_and_query_input_type(client, encoder):
    single = client.post("/v1/embeddings", json={"model": "tiny", "input": TEXTS[0]}).json()
    query = client.post(
        "/v1/embeddings", json={"model": "tiny", "input": TEXTS[0], "input_type": "query"}
    ).json()
    np.testing.assert_allclose(
        single["data"][0]["embedding"], encoder.encode_documents(TEXTS[:1])[0], atol=1e-6
    )
    np.testing.assert_allclose(query["data"][0]["embedding"], encoder.encode_queries(TEXTS[:1])[0], atol=1e-6)
    assert query["usage"]["prompt_tokens"] > single["usage"]["prompt_tokens"]  # the instruction's tokens


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"model": "gpt-4", "input": "x"}, 404, "use 'tiny'"),
        ({"model": "tiny", "input": [101, 2023]}, 400, "token ids is not supported"),
        ({"model": "tiny", "input": [[101, 2023]]}, 400, "token ids is not supported"),
        ({"model": "tiny", "input": []}, 400, "input is empty"),
        ({"input": "x"}, 400, "model: Field required"),
        ({"model": "tiny", "input": "x", "encoding_format": "int8"}, 400, "encoding_format"),
        ({"model": "tiny", "input": "x", "dimensions": 7}, 400, "dimensions 7 is not served; use 32"),
    ],
)
def test_bad_embedding_requests_get_a_one_line_openai_error(client, body, status, says):
    response = client.post("/v1/embeddings", json=body)
    error = response.json()["error"]
    assert response.status_code == status
    assert says in error["message"] and "\n" not in error["message"]
    assert set(error) == {"message", "type", "param", "code"}


def test_malformed_json_and_too_many_inputs(client):
    response = client.post(
        "/v1/embeddings", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400 and "JSON" in response.json()["error"]["message"]
    many = client.post("/v1/embeddings", json={"model": "tiny", "input": ["x"] * 2049})
    assert many.status_code == 400 and "limit of 2048" in many.json()["error"]["message"]


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_search_returns_the_retrievers_hits(client, retriever, mode):
    question = "how do plants make energy from sunlight?"
    body = client.post("/v1/search", json={"query": question, "k": 3, "mode": mode}).json()
    expected = retriever.search(question, k=3, mode=mode)
    assert body["mode"] == mode and body["results"][0]["query"] == question
    got = body["results"][0]["hits"]
    assert [(h["path"], h["chunk_id"]) for h in got] == [(h.path, h.chunk_id) for h in expected]
    np.testing.assert_allclose([h["score"] for h in got], [h.score for h in expected], rtol=1e-5)
    assert set(got[0]) == set(asdict(expected[0]))


def test_search_with_several_queries_a_filter_and_the_default_mode(client, retriever):
    queries = ["waggle dance", "storming of the Bastille"]
    body = client.post(
        "/v1/search",
        json={"queries": queries, "k": 2, "filter": {"path": {"$in": ["honey-bees.md", "coffee.md"]}}},
    ).json()
    assert body["mode"] == retriever.resolve_mode(None)
    assert [r["query"] for r in body["results"]] == queries
    assert {h["path"] for r in body["results"] for h in r["hits"]} <= {"honey-bees.md", "coffee.md"}
    assert body["results"][0]["hits"][0]["path"] == "honey-bees.md"


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"query": "x", "queries": ["y"]}, "send one of `query`"),
        ({}, "send one of `query`"),
        ({"query": "x", "k": 1001}, "over the limit of 1000"),
        ({"query": "x", "k": 0}, "k: Input should be greater than or equal to 1"),
        ({"query": "x", "top_k": 3}, "top_k: Extra inputs are not permitted"),
        ({"query": "x", "filter": {"year": {"$near": 3}}}, "$near"),
        ({"query": "x", "mode": "sparse"}, "mode: Input should be"),
    ],
)
def test_bad_search_requests_get_a_one_line_error(client, body, says):
    response = client.post("/v1/search", json=body)
    assert response.status_code == 400
    assert says in response.json()["error"]["message"]


def test_health_models_and_the_page(client):
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["model"] == "tiny" and health["chunks"] > 8
    assert health["modes"] == ["hybrid", "dense", "bm25"] and health["auth"] is False
    assert client.get("/v1/models").json()["data"][0]["id"] == "tiny"
    page = client.get("/")
    assert page.status_code == 200 and "/v1/search" in page.text and "<script" in page.text
    assert "http" not in page.text.replace("http-equiv", "")  # nothing fetched from elsewhere: works offline
    assert client.get("/openapi.json").json()["paths"].keys() >= {"/v1/embeddings", "/v1/search"}


def test_an_api_key_guards_the_api_but_not_health_or_the_page(retriever):
    app = create_app(retriever=retriever, config=ServeConfig(model_name="tiny", api_key="s3cret"))
    with TestClient(app) as client:
        body = {"model": "tiny", "input": "x"}
        denied = client.post("/v1/embeddings", json=body)
        wrong = client.post("/v1/embeddings", json=body, headers={"Authorization": "Bearer nope"})
        allowed = client.post("/v1/embeddings", json=body, headers={"Authorization": "Bearer s3cret"})
        assert denied.status_code == wrong.status_code == 401
        assert denied.json()["error"]["type"] == "authentication_error"
        assert allowed.status_code == 200
        assert client.get("/health").json()["auth"] is True and client.get("/").status_code == 200


def test_a_body_over_the_size_limit_is_refused_before_it_is_read(retriever):
    app = create_app(retriever=retriever, config=ServeConfig(model_name="tiny", max_request_bytes=1000))
    with TestClient(app) as client:
        response = client.post("/v1/embeddings", json={"model": "tiny", "input": "word " * 400})
        assert response.status_code == 413 and "limit of 1000" in response.json()["error"]["message"]


def test_a_failing_encode_is_a_500_json_error_and_the_server_keeps_serving(retriever, encoder, monkeypatch):
    app = create_app(retriever=retriever, config=ServeConfig(model_name="tiny"))
    with TestClient(app, raise_server_exceptions=False) as client:
        with monkeypatch.context() as patch:
            patch.setattr(
                encoder, "encode", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("out of memory"))
            )
            failed = client.post("/v1/embeddings", json={"model": "tiny", "input": "x"})
        assert failed.status_code == 500
        assert failed.json()["error"]["message"] == "internal error (RuntimeError): out of memory"
        assert client.post("/v1/embeddings", json={"model": "tiny", "input": "x"}).status_code == 200


def test_dimensions_use_the_index_pca(encoder, tmp_path):
    Index.build(EXAMPLE_CORPUS, encoder, tmp_path / "pca", pca=16, show_progress=False)
    retriever = Retriever.load(tmp_path / "pca", encoder=encoder)
    with TestClient(create_app(retriever=retriever, config=ServeConfig(model_name="tiny"))) as client:
        body = client.post("/v1/embeddings", json={"model": "tiny", "input": TEXTS, "dimensions": 16}).json()
        full = client.post("/v1/embeddings", json={"model": "tiny", "input": TEXTS, "dimensions": 32}).json()
    reduced = np.array([row["embedding"] for row in body["data"]])
    np.testing.assert_allclose(reduced, retriever.transform.apply(encoder.encode(TEXTS)), atol=1e-5)
    assert reduced.shape == (3, 16) and len(full["data"][0]["embedding"]) == 32
    retriever.close()


def test_the_openai_client_against_a_live_server(retriever, encoder):
    openai = pytest.importorskip("openai")
    app = create_app(retriever=retriever, config=ServeConfig(model_name="tiny", api_key="k"))
    with live_server(app) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="k", max_retries=0)
        response = client.embeddings.create(model="tiny", input=TEXTS)  # the client asks for base64
        queries = client.embeddings.create(model="tiny", input=TEXTS[:1], extra_body={"input_type": "query"})
        assert [m.id for m in client.models.list()] == ["tiny"]
        with pytest.raises(openai.NotFoundError, match="not served here"):
            client.embeddings.create(model="text-embedding-3-small", input="x")
    np.testing.assert_allclose([d.embedding for d in response.data], encoder.encode(TEXTS), atol=1e-6)
    np.testing.assert_allclose(queries.data[0].embedding, encoder.encode_queries(TEXTS[:1])[0], atol=1e-6)
    assert response.usage.total_tokens == sum(len(ids) for ids in encoder.token_ids(TEXTS)[0])


def test_serve_refuses_to_bind_beyond_loopback_without_a_key():
    result = run_ragkit("serve", "--host", "0.0.0.0", "--model", "smollm2-135m")
    assert result.returncode == 1
    assert "pass --api-key KEY" in result.stderr and "Traceback" not in result.stderr


def test_ragkit_serve_runs_a_server_a_client_can_call(tmp_path):
    import subprocess
    import sys
    import time

    import httpx

    encoder = tiny_encoder()
    encoder.save(tmp_path / "enc")
    port = free_port()
    command = "from ragkit.cli.app import main; main()"
    args = ["serve", "--model", str(tmp_path / "enc"), "--port", str(port), "--served-model-name", "mine"]
    server = subprocess.Popen([sys.executable, "-c", command, *args], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, server.stderr.read()
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).json()
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.2)
        body = {"model": "mine", "input": TEXTS}
        response = httpx.post(f"http://127.0.0.1:{port}/v1/embeddings", json=body, timeout=30).json()
        no_index = httpx.post(f"http://127.0.0.1:{port}/v1/search", json={"query": "x"}, timeout=30)
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert health["model"] == "mine" and health["index"] is None
    served = Encoder.load(tmp_path / "enc")  # as the server loads it (the default precision)
    np.testing.assert_allclose([d["embedding"] for d in response["data"]], served.encode(TEXTS), atol=1e-5)
    assert no_index.status_code == 404 and "--index DIR" in no_index.json()["error"]["message"]


def test_langchain_and_llama_index_openai_embeddings_against_a_live_server(encoder):
    langchain_openai = pytest.importorskip("langchain_openai")
    llama_openai = pytest.importorskip("llama_index.embeddings.openai")
    app = create_app(encoder, config=ServeConfig(model_name="tiny"))
    with live_server(app) as url:
        # LangChain sends tiktoken ids unless told not to (tiktoken's tables need the internet, too).
        lc = langchain_openai.OpenAIEmbeddings(
            base_url=f"{url}/v1", api_key="unused", model="tiny", check_embedding_ctx_length=False
        )
        li = llama_openai.OpenAIEmbedding(model_name="tiny", api_base=f"{url}/v1", api_key="unused")
        from_langchain = lc.embed_documents(TEXTS)
        from_llama_index = li.get_text_embedding_batch(TEXTS)
    np.testing.assert_allclose(from_langchain, encoder.encode(TEXTS), atol=1e-6)
    np.testing.assert_allclose(from_llama_index, encoder.encode(TEXTS), atol=1e-6)
