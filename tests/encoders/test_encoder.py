"""The Encoder API: shapes, order, normalisation, instructions, truncation, bad input, save/load."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import SENTENCES, requires_smollm2, tiny_encoder

from ragkit import Encoder, EncoderConfig, RagkitError


@pytest.fixture
def encoder() -> Encoder:
    return tiny_encoder("llama")


def test_encode_returns_normalised_float32_rows_in_input_order(encoder):
    out = encoder.encode(SENTENCES, batch_size=3)  # length-sorted batching reorders internally
    assert out.shape == (len(SENTENCES), encoder.dim) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-6)
    one_by_one = np.stack([encoder.encode([s])[0] for s in SENTENCES])
    np.testing.assert_allclose(out, one_by_one, atol=1e-5)


def test_encode_under_bf16_autocast_still_returns_float32(encoder):
    """Training stages encode under autocast (synthetic-query mining); numpy has no bf16."""
    with torch.autocast("cpu", dtype=torch.bfloat16):
        vectors = encoder.encode(SENTENCES[:3])
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(vectors, encoder.encode(SENTENCES[:3]), atol=0.05)


def test_normalize_false_keeps_the_raw_mean(encoder):
    raw = encoder.encode(SENTENCES, normalize=False)
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0)
    np.testing.assert_allclose(
        raw / np.linalg.norm(raw, axis=1, keepdims=True), encoder.encode(SENTENCES), atol=1e-6
    )


def test_empty_list_gives_an_empty_matrix(encoder):
    out = encoder.encode([])
    assert out.shape == (0, encoder.dim) and out.dtype == np.float32


def test_empty_string_is_encoded(encoder):
    out = encoder.encode(["", "text"])
    assert np.isfinite(out).all()


@pytest.mark.parametrize(
    ("texts", "message"),
    [
        (None, "texts is None"),
        (["ok", 3], r"texts\[1\] is int"),
        (["ok", "fine", None], r"texts\[2\] is NoneType"),
    ],
)
def test_bad_input_names_the_problem(encoder, texts, message):
    with pytest.raises(RagkitError, match=message):
        encoder.encode(texts)


def test_bad_batch_size_is_refused(encoder):
    with pytest.raises(RagkitError, match="batch_size"):
        encoder.encode(["a"], batch_size=0)


def test_long_texts_are_truncated_to_max_length():
    encoder = tiny_encoder("llama", max_length=8)
    long_text = " ".join(SENTENCES)
    ids = encoder.tokenize([long_text])["input_ids"]
    assert ids.shape[1] == 8
    prefix = encoder.tokenizer.decode(ids[0, 1:])  # the first 7 text tokens, without BOS
    np.testing.assert_allclose(encoder.encode([long_text]), encoder.encode([prefix]), atol=1e-5)


def test_instruction_is_kept_whole_when_truncating():
    encoder = tiny_encoder("llama", max_length=24)
    instruction = "Represent the sentence: "
    n_prompt = 1 + len(encoder.tokenizer(instruction, add_special_tokens=False)["input_ids"])
    batch = encoder.tokenize([" ".join(SENTENCES)], instruction=instruction)
    assert batch["input_ids"].shape[1] == 24 and batch["prompt_lengths"].item() == n_prompt < 24


def test_instruction_longer_than_max_length_is_refused():
    encoder = tiny_encoder("llama", max_length=4)
    with pytest.raises(RagkitError, match="instruction takes"):
        encoder.encode(["a"], instruction="a long instruction that cannot fit")


def test_queries_and_documents_use_their_own_instructions():
    encoder = tiny_encoder("llama", query_instruction="Find the answer: ", document_instruction=None)
    q = encoder.encode_queries(SENTENCES[:2])
    np.testing.assert_allclose(q, encoder.encode(SENTENCES[:2], instruction="Find the answer: "), atol=1e-6)
    np.testing.assert_allclose(
        encoder.encode_documents(SENTENCES[:2]), encoder.encode(SENTENCES[:2]), atol=1e-6
    )


def test_bad_config_is_refused():
    with pytest.raises(RagkitError, match="pooling"):
        EncoderConfig(pooling="max")
    with pytest.raises(RagkitError, match="max_length"):
        EncoderConfig(max_length=0)


@pytest.mark.parametrize("family", ["llama", "gemma3_text"])
def test_save_and_load_round_trip_to_identical_embeddings(tmp_path, family):
    encoder = tiny_encoder(family, pooling="weighted_mean", query_instruction="Q: ", max_length=64)
    encoder.save(tmp_path / "enc")
    loaded = Encoder.load(tmp_path / "enc")
    assert loaded.config.pooling == "weighted_mean" and loaded.config.query_instruction == "Q: "
    assert loaded.config.max_length == 64 and loaded.config.bidirectional
    # Equal to float32 rounding: on CPU bit for bit; a GPU may pick other kernels for the loaded copy
    # (1.5e-7 apart on an H200), while a wrong weight or setting moves vectors by 1e-2.
    np.testing.assert_allclose(
        loaded.encode_queries(SENTENCES), encoder.encode_queries(SENTENCES), rtol=0, atol=1e-6
    )
    saved = json.loads((tmp_path / "enc" / "ragkit_config.json").read_text())
    assert saved["format_version"] == 1
    assert "transformers 5" in (tmp_path / "enc" / "README.md").read_text()


def test_load_options_override_the_saved_config(tmp_path):
    tiny_encoder("llama").save(tmp_path / "enc")
    loaded = Encoder.load(tmp_path / "enc", pooling="last_token", bidirectional=False, max_length=16)
    assert (loaded.config.pooling, loaded.config.bidirectional, loaded.config.max_length) == (
        "last_token",
        False,
        16,
    )
    assert loaded.model.config.is_causal


def test_save_replaces_atomically_and_a_failed_save_keeps_the_old_copy(tmp_path, monkeypatch):
    first = tiny_encoder("llama")
    first.save(tmp_path / "enc")
    before = Encoder.load(tmp_path / "enc").encode(SENTENCES)

    second = tiny_encoder("qwen2")

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(second.tokenizer, "save_pretrained", crash)
    with pytest.raises(KeyboardInterrupt):
        second.save(tmp_path / "enc")
    np.testing.assert_array_equal(Encoder.load(tmp_path / "enc").encode(SENTENCES), before)

    monkeypatch.undo()
    second.save(tmp_path / "enc")
    assert Encoder.load(tmp_path / "enc").model.config.model_type == "qwen2"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "enc",
        *[p.name for p in tmp_path.glob("enc.tmp-*")],
    ]


def test_a_newer_format_is_refused(tmp_path):
    tiny_encoder("llama").save(tmp_path / "enc")
    path = tmp_path / "enc" / "ragkit_config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "format_version": 99}))
    with pytest.raises(RagkitError, match="newer ragkit"):
        Encoder.load(tmp_path / "enc")


@requires_smollm2
def test_smollm2_default_shape_and_meaning(smollm2):
    assert smollm2.encode(["a", "b"]).shape == (2, 576)
    assert smollm2.model.dtype.is_floating_point and str(smollm2.model.dtype) == "torch.float32"
    v = smollm2.encode(
        ["The cat sleeps on the sofa.", "A kitten is napping on the couch.", "Stock prices fell."]
    )
    assert v[0] @ v[1] > v[0] @ v[2]


@pytest.mark.parametrize("text", ["\udcff", b"caf\xe9 au lait".decode("utf-8", "surrogateescape")])
def test_lone_surrogates_are_a_one_line_error_naming_the_text(encoder, text):
    with pytest.raises(RagkitError, match=r"texts\[1\] holds a lone surrogate"):  # before: TypeError
        encoder.encode(["fine", text])
    with pytest.raises(RagkitError, match="instruction"):
        encoder.encode(["fine"], instruction=text)


def test_save_of_a_model_in_training_keeps_its_adapters(tmp_path):
    from ragkit.adapt.lora import add_lora

    encoder = tiny_encoder("llama")
    peft_model = encoder.model = add_lora(encoder.model, 4, 8, 0.0, seed=0)
    before = encoder.encode(SENTENCES)
    encoder.save(tmp_path / "enc")
    assert encoder.model is peft_model  # before: silently replaced by the merged model
    assert any("lora_A" in name for name, _ in encoder.model.named_parameters())
    np.testing.assert_allclose(Encoder.load(tmp_path / "enc").encode(SENTENCES), before, atol=1e-5)
