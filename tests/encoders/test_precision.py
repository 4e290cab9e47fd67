"""Inference precision: bf16 autocast and int8 are real changes of how the encoder computes, close to fp32."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import SENTENCES, tiny_encoder, tiny_model, tiny_tokenizer

from ragkit import Encoder, RagkitError
from ragkit.encoders import precision
from ragkit.encoders.encoder import EncoderConfig
from ragkit.encoders.precision import compute_context, matching_precision, resolve_precision


def test_bf16_runs_the_matmuls_in_bf16_and_stays_close_to_fp32():
    fp32 = tiny_encoder("llama")
    bf16 = Encoder(tiny_model("llama"), tiny_tokenizer(), EncoderConfig(source="llama"), precision="bf16")
    seen = []
    hook = bf16.model.layers[0].mlp.up_proj.register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    a, b = fp32.encode(SENTENCES), bf16.encode(SENTENCES)
    hook.remove()
    assert seen and set(seen) == {torch.bfloat16}  # autocast reached the linear layers
    assert b.dtype == np.float32 and not np.array_equal(a, b)
    assert (a * b).sum(axis=1).min() > 0.99
    assert next(bf16.model.parameters()).dtype == torch.float32  # weights stay fp32 (training can go on)


def test_bf16_linear_layers_give_autocasts_vectors_and_survive_a_worker_handoff(tmp_path):
    """`Encoder.load` packs the linear weights in bf16 once: the same vectors as autocast over fp32
    weights, a model that pickles (worker processes), and one that refuses to be saved."""
    import pickle

    from ragkit.encoders.precision import BF16Linear, bf16_linear_weights

    autocast = Encoder(tiny_model("llama"), tiny_tokenizer(), EncoderConfig(source="llama"), precision="bf16")
    packed_model = bf16_linear_weights(tiny_model("llama"))
    packed = Encoder(packed_model, tiny_tokenizer(), EncoderConfig(source="llama"), precision="bf16")
    layers = [m for m in packed.model.modules() if isinstance(m, (torch.nn.Linear, BF16Linear))]
    assert layers and all(isinstance(m, BF16Linear) for m in layers)
    a, b = autocast.encode(SENTENCES), packed.encode(SENTENCES)
    assert (a * b).sum(axis=1).min() > 0.99999
    # One text alone gets its batched vector, as closely as autocast's does (bf16 rounding).
    alone = min((packed.encode([text]) * b[i]).sum() for i, text in enumerate(SENTENCES))
    assert alone >= min((autocast.encode([text]) * a[i]).sum() for i, text in enumerate(SENTENCES)) - 1e-7
    assert alone > 0.999999
    copy = pickle.loads(pickle.dumps(packed))
    np.testing.assert_array_equal(copy.encode(SENTENCES), b)
    with pytest.raises(RagkitError, match='load it with precision="fp32"'):
        packed.save(tmp_path / "saved")
    assert not (tmp_path / "saved").exists()


def test_int8_runs_every_linear_layer_as_an_int8_matmul_close_to_fp32():
    from ragkit.encoders.int8 import Int8Linear, int8_model

    encoder = Encoder(tiny_model("llama"), tiny_tokenizer(), EncoderConfig(source="llama"), precision="int8")
    assert encoder.precision == "int8"
    with pytest.raises(ValueError, match="measures an fp32 encoder; this one computes in int8"):
        int8_model(encoder)  # calibration needs an fp32 encoder of the model; none is half-built
    layers = [m for m in encoder.model.modules() if isinstance(m, (torch.nn.Linear, Int8Linear))]
    assert layers and all(isinstance(m, Int8Linear) for m in layers)
    assert {m.weight_t.dtype for m in layers} == {torch.int8}
    assert all(m.smoothing is not None for m in layers)  # SmoothQuant, measured on the built-in texts
    vectors = encoder.encode(SENTENCES)
    assert vectors.shape == (len(SENTENCES), encoder.dim)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    fp32 = tiny_encoder("llama").encode(SENTENCES)
    assert (vectors * fp32).sum(axis=1).min() > 0.99


def test_an_int8_linear_layer_is_the_rescaled_integer_product():
    """Per-token activation scales and per-channel weight scales: an outlier in one token's row
    costs precision in that row only."""
    from ragkit.encoders.int8 import Int8Linear

    torch.manual_seed(0)
    linear = torch.nn.Linear(64, 32)
    x = torch.randn(3, 5, 64)
    x[0, 0, 7] = 500.0  # a massive activation in one token
    quantized = Int8Linear(linear)
    y, expected = quantized(x), linear(x)
    assert y.shape == expected.shape == (3, 5, 32)
    cosine = torch.nn.functional.cosine_similarity(y.reshape(-1, 32), expected.reshape(-1, 32), dim=1)
    assert cosine[1:].min() > 0.999  # every other token keeps its precision
    # Smoothing moves range from activations into weights without changing the product.
    smoothed = Int8Linear(linear, smoothing=torch.rand(64) + 0.5)
    assert torch.nn.functional.cosine_similarity(smoothed(x[1]), linear(x[1]), dim=1).min() > 0.999


@pytest.mark.parametrize("native", [True, False])
def test_the_default_is_bf16_where_the_device_computes_it_else_fp32(monkeypatch, native):
    monkeypatch.delenv("RAGKIT_PRECISION", raising=False)
    monkeypatch.setattr(precision, "native_bf16", lambda device: native)
    expected = "bf16" if native else "fp32"
    assert resolve_precision(None, torch.device("cpu")) == expected
    assert resolve_precision(None, torch.device("cuda")) == expected
    # An index's queries are encoded as its documents were, where the device can.
    assert matching_precision("bf16", torch.device("cpu")) == ("bf16" if native else None)
    assert matching_precision("fp32", torch.device("cpu")) == "fp32"
    assert matching_precision("int8", torch.device("cuda")) is None
    assert matching_precision("", torch.device("cpu")) is None  # an older index: the default


def test_ragkit_precision_sets_the_default_everywhere(monkeypatch):
    monkeypatch.setenv("RAGKIT_PRECISION", "int8")
    assert resolve_precision(None, torch.device("cpu")) == "int8"
    assert resolve_precision("fp32", torch.device("cpu")) == "fp32"  # an explicit one still wins
    monkeypatch.setenv("RAGKIT_PRECISION", "fp8")
    with pytest.raises(RagkitError, match="RAGKIT_PRECISION='fp8' is not a precision"):
        resolve_precision(None, torch.device("cpu"))


def test_precision_one_line_errors():
    with pytest.raises(RagkitError, match="unknown precision 'fp8': use one of fp32, bf16, int8"):
        resolve_precision("fp8", torch.device("cpu"))
    with pytest.raises(RagkitError, match="int8 is for CPU encoding"):
        resolve_precision("int8", torch.device("cuda"))
    with compute_context("bf16", torch.device("cpu")):
        assert torch.is_autocast_enabled("cpu")
    with compute_context("fp32", torch.device("cpu")):
        assert not torch.is_autocast_enabled("cpu")


def test_native_bf16_reads_the_cpu_flags(tmp_path, monkeypatch):
    cpuinfo = tmp_path / "cpuinfo"
    monkeypatch.setattr(precision, "CPUINFO", cpuinfo)
    cpu = torch.device("cpu")
    assert not precision.native_bf16(cpu)  # unreadable: no
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f\n")
    assert not precision.native_bf16(cpu)
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx512f avx512_bf16 amx_tile\n")
    assert precision.native_bf16(cpu)
