"""The HTTP API: OpenAI's embeddings shapes, search, limits, keys and errors."""

from __future__ import annotations

import base64
import json
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
    assert body["mode"] == retriever.resolve().mode
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


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ('{"query": "x", "filter": {"\\ud800": 1}}', "lone surrogate"),  # a lone surrogate as a filter key
        (
            '{"query": "x", "filter": ' + '{"$and": [' * 3000 + '{"a": 1}' + "]}" * 3000 + "}",
            "nested too deep",
        ),
        ('{"query": "x", "filter": ' + '{"$and": [' * 100 + '{"a": 1}' + "]}" * 100 + "}", "too complex"),
    ],
)
def test_filters_past_what_json_or_sqlite_take_get_a_one_line_error(client, raw, says):
    response = client.post("/v1/search", content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
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
    log = server.stderr.read()
    assert "POST /v1/embeddings 200 " in log and "POST /v1/search 404 " in log  # the access log
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


def test_metrics_count_requests_by_route_and_the_batches(client):
    for _ in range(2):
        client.post("/v1/embeddings", json={"model": "tiny", "input": TEXTS})
    client.post("/v1/search", json={"query": "bread", "mode": "bm25"})
    client.post("/v1/embeddings", json={"model": "nope", "input": "x"})
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith(
        "text/plain; version=0.0.4"
    )
    lines = response.text.splitlines()
    assert 'ragkit_requests_total{method="POST",route="/v1/embeddings",status="200"} 2' in lines
    assert 'ragkit_requests_total{method="POST",route="/v1/embeddings",status="404"} 1' in lines
    assert 'ragkit_requests_total{method="POST",route="/v1/search",status="200"} 1' in lines
    assert 'ragkit_request_seconds_count{method="POST",route="/v1/embeddings"} 3' in lines
    assert "ragkit_batch_texts_count 2" in lines and "ragkit_batch_texts_sum 6.0" in lines  # bm25: no encode
    assert "ragkit_queued_texts 0" in lines


def test_an_access_log_line_per_request_unless_turned_off(retriever, caplog):
    for quiet in (False, True):
        caplog.clear()
        app = create_app(retriever=retriever, config=ServeConfig(model_name="tiny", access_log=not quiet))
        with caplog.at_level("INFO", logger="ragkit.serve.access"), TestClient(app) as client:
            client.post("/v1/search", json={"query": "bread", "mode": "bm25"})
            client.get("/nowhere")
        lines = [r.getMessage() for r in caplog.records if r.name == "ragkit.serve.access"]
        if quiet:
            assert lines == []
        else:
            assert (
                len(lines) == 2 and lines[0].startswith("POST /v1/search 200 ") and lines[0].endswith(" ms")
            )
            assert lines[1].startswith("GET /nowhere 404 ")


def test_a_bad_text_fails_only_its_own_request_among_concurrent_good_ones(client):
    from concurrent.futures import ThreadPoolExecutor

    inputs = [[TEXTS[i % 3]] for i in range(11)] + [["fine", "broken \udcff text"]]

    def post(texts):  # json.dumps escapes the lone surrogate as a client library would send it
        body = json.dumps({"model": "tiny", "input": texts})
        return client.post("/v1/embeddings", content=body, headers={"Content-Type": "application/json"})

    with ThreadPoolExecutor(12) as pool:
        responses = list(pool.map(post, inputs))
    assert [r.status_code for r in responses] == [200] * 11 + [400]
    assert "lone surrogate" in responses[-1].json()["error"]["message"]


def test_a_busy_server_refuses_more_than_it_may_queue(retriever):
    app = create_app(retriever=retriever, config=ServeConfig(model_name="tiny", max_queued_texts=2))
    with TestClient(app) as client:
        busy = client.post("/v1/embeddings", json={"model": "tiny", "input": TEXTS})
        assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
        assert "limit 2" in busy.json()["error"]["message"]
        assert client.post("/v1/embeddings", json={"model": "tiny", "input": TEXTS[:2]}).status_code == 200


def test_texts_of_a_client_that_left_are_never_encoded(retriever):
    import socket
    import threading
    import time

    import httpx

    app = create_app(retriever=retriever, config=ServeConfig(model_name="tiny"))
    batcher = app.state.ragkit.batcher
    encode, seen, busy, release = batcher.encode_function, [], threading.Event(), threading.Event()

    def blocking(kind, texts):  # the first batch holds the worker, as a long encode does
        seen.append(texts)
        if len(seen) == 1:
            busy.set()
            release.wait(timeout=20)
        return encode(kind, texts)

    batcher.encode_function = blocking
    with live_server(app) as url:
        port = int(url.rsplit(":", 1)[1])
        first = threading.Thread(
            target=httpx.post,
            args=(f"{url}/v1/embeddings",),
            kwargs={"json": {"model": "tiny", "input": "a"}},
        )
        first.start()
        assert busy.wait(timeout=10)
        body = json.dumps({"model": "tiny", "input": ["gone"] * 50}).encode()
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(
                b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            time.sleep(0.3)  # the request is queued behind the busy worker; then its client leaves
        deadline = time.monotonic() + 10
        while 'status="499"' not in httpx.get(f"{url}/metrics").text:
            assert time.monotonic() < deadline, "the server did not notice the client leaving"
            time.sleep(0.05)
        release.set()
        first.join(timeout=20)
        later = httpx.post(f"{url}/v1/embeddings", json={"model": "tiny", "input": "b"}, timeout=10)
    assert later.status_code == 200
    assert ["gone"] * 50 not in seen and batcher.pending_texts == 0
