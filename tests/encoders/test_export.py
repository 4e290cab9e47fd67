"""`Encoder.export`: a sentence-transformers directory that gives ragkit's vectors."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import SENTENCES, requires_smollm2, run_ragkit, shared_folder, tiny_encoder

from ragkit import Encoder, RagkitError

st = pytest.importorskip("sentence_transformers", minversion="6")


def load(directory):
    return st.SentenceTransformer(str(directory), trust_remote_code=True, device="cpu")


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float((a * b).sum(axis=1).min())


@pytest.mark.parametrize(
    ("family", "padding_side", "settings"),
    [
        ("llama", "right", {}),
        ("gemma3_text", "left", {}),  # left padding: positions from the attention mask
        (
            "qwen2",
            "right",
            {"instruction_join": "llm2vec", "template": "qwen2-instruct", "doc_max_length": 8},
        ),
        ("mistral", "right", {"pooling": "eos_token"}),
    ],
)
def test_exported_vectors_equal_ragkits(family, padding_side, settings, tmp_path):
    encoder = tiny_encoder(family, padding_side, query_instruction="Find the passage: ", **settings)
    encoder.export(tmp_path / "st")
    model = load(tmp_path / "st")
    assert min_cosine(model.encode_document(SENTENCES), encoder.encode_documents(SENTENCES)) > 0.9999
    assert min_cosine(model.encode_query(SENTENCES), encoder.encode_queries(SENTENCES)) > 0.9999
    assert model[0].model.config.is_causal is False  # bidirectional attention kept


def test_the_export_loads_back_into_ragkit_and_refuses_what_it_cannot_match(tmp_path):
    encoder = tiny_encoder("llama", query_instruction="Find: ")
    encoder.export(tmp_path / "st")
    again = Encoder.load(tmp_path / "st")
    np.testing.assert_allclose(again.encode_queries(SENTENCES), encoder.encode_queries(SENTENCES), atol=1e-5)
    from ragkit.eval.models import RagkitModel, load_eval_model

    assert isinstance(load_eval_model(str(tmp_path / "st")), RagkitModel)  # eval reads it as ragkit's
    with pytest.raises(RagkitError, match="weighted_mean"):
        tiny_encoder("llama", pooling="weighted_mean").export(tmp_path / "wm")
    with pytest.raises(RagkitError, match="unknown export `format`"):
        encoder.export(tmp_path / "x", format="onnx")
    assert not (tmp_path / "wm").exists()


@requires_smollm2
def test_the_built_in_encoder_exported_gives_its_vectors_on_real_text(tmp_path):
    import gzip
    import itertools
    import json

    folder = shared_folder("scifact")
    with gzip.open(folder / "corpus.jsonl.gz", "rt") as f:
        documents = [row["title"] + "\n" + row["text"] for row in map(json.loads, itertools.islice(f, 32))]
    queries = [json.loads(line)["text"] for line in (folder / "queries.jsonl").read_text().splitlines()[:32]]
    result = run_ragkit("export", str(tmp_path / "st"))
    assert result.returncode == 0, result.stderr
    encoder = Encoder.load()
    model = load(tmp_path / "st")
    assert model.prompts["query"] == encoder.config.query_instruction
    assert min_cosine(model.encode_document(documents), encoder.encode_documents(documents)) >= 0.9999
    assert min_cosine(model.encode_query(queries), encoder.encode_queries(queries)) >= 0.9999
