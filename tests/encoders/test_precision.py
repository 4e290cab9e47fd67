"""Inference precision: bf16 autocast and int8 are real changes of how the encoder computes, close to fp32."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import SENTENCES, tiny_encoder, tiny_model, tiny_tokenizer

from ragkit import Encoder, RagkitError
from ragkit.encoders.encoder import EncoderConfig
from ragkit.encoders.precision import CPU_DEFAULT, compute_context, resolve_precision


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


def test_int8_quantizes_the_linear_layers():
    encoder = Encoder(tiny_model("llama"), tiny_tokenizer(), EncoderConfig(source="llama"), precision="int8")
    layer = encoder.model.layers[0].self_attn.q_proj
    assert "quantized" in type(layer).__module__  # torch.ao's dynamically quantized Linear
    vectors = encoder.encode(SENTENCES)
    assert vectors.shape == (len(SENTENCES), encoder.dim)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    fp32 = tiny_encoder("llama").encode(SENTENCES)
    assert (vectors * fp32).sum(axis=1).mean() > 0.9


def test_precision_defaults_and_one_line_errors():
    assert resolve_precision(None, torch.device("cpu")) == CPU_DEFAULT
    assert resolve_precision(None, torch.device("cuda")) == "bf16"
    with pytest.raises(RagkitError, match="unknown precision 'fp8': use one of fp32, bf16, int8"):
        resolve_precision("fp8", torch.device("cpu"))
    with pytest.raises(RagkitError, match="int8 is for CPU encoding"):
        resolve_precision("int8", torch.device("cuda"))
    with compute_context("bf16", torch.device("cpu")):
        assert torch.is_autocast_enabled("cpu")
    with compute_context("fp32", torch.device("cpu")):
        assert not torch.is_autocast_enabled("cpu")


def test_native_bf16_reads_the_cpu_flags(tmp_path, monkeypatch):
    from ragkit.encoders import precision

    cpuinfo = tmp_path / "cpuinfo"
    monkeypatch.setattr(precision, "CPUINFO", cpuinfo)
    cpu = torch.device("cpu")
    assert not precision.native_bf16(cpu)  # unreadable: no
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f\n")
    assert not precision.native_bf16(cpu)
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx512f avx512_bf16 amx_tile\n")
    assert precision.native_bf16(cpu)
