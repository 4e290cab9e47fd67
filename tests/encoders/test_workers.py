"""Multi-device encoding: worker processes, each with its own model, give the one-process vectors."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import SENTENCES, tiny_encoder

from ragkit import RagkitError
from ragkit.encoders.workers import resolve_devices

TEXTS = [s * (1 + i % 4) for i, s in enumerate(SENTENCES * 5)]  # 40 texts of mixed lengths


def test_two_cpu_workers_give_the_one_process_vectors_in_input_order():
    encoder = tiny_encoder("llama", query_instruction="Find: ")
    try:
        single = encoder.encode_queries(TEXTS, batch_size=4)
        pooled = encoder.encode_queries(TEXTS, batch_size=4, devices=["cpu", "cpu"])
        pids = [p.pid for p in encoder._pool.processes]
        again = encoder.encode(TEXTS[:7], devices="cpu,cpu", max_length=8)
        assert [p.pid for p in encoder._pool.processes] == pids  # the workers are kept, not restarted
    finally:
        encoder.close()
    np.testing.assert_allclose(pooled, single, atol=1e-5)
    np.testing.assert_allclose(again, encoder.encode(TEXTS[:7], max_length=8), atol=1e-5)
    assert len(set(pids)) == 2 and encoder._pool is None


def test_the_encoders_devices_setting_is_used_and_a_worker_error_is_one_line():
    encoder = tiny_encoder("llama")
    encoder.devices = ["cpu", "cpu"]
    try:
        np.testing.assert_allclose(encoder.encode(TEXTS), tiny_encoder("llama").encode(TEXTS), atol=1e-5)
        with pytest.raises(RagkitError, match="batch_size must be at least 1"):
            encoder.encode(TEXTS, batch_size=0)  # checked before any worker sees it
        with pytest.raises(RagkitError, match=r"encoding on cpu failed: .*instruction takes"):
            encoder.encode(TEXTS, instruction="word " * 600)
        assert encoder._pool.alive  # the workers survive a failed request, and nothing of it is left over
        np.testing.assert_allclose(
            encoder.encode(TEXTS[:5]), tiny_encoder("llama").encode(TEXTS[:5]), atol=1e-5
        )
    finally:
        encoder.close()


def test_ragkit_embed_on_two_cpu_workers(tmp_path):
    from helpers import run_ragkit

    encoder = tiny_encoder("llama")
    encoder.save(tmp_path / "enc")
    out = tmp_path / "v.npy"
    result = run_ragkit(
        "embed", *SENTENCES, "-m", str(tmp_path / "enc"), "--devices", "cpu,cpu", "--out", str(out)
    )
    assert result.returncode == 0, result.stderr
    np.testing.assert_allclose(np.load(out), encoder.encode(SENTENCES), atol=1e-5)


def test_device_names():
    assert resolve_devices(None) is None
    assert resolve_devices("cpu, cpu") == ["cpu", "cpu"]
    assert resolve_devices("all") in (["cpu"], [f"cuda:{i}" for i in range(8)][: len(resolve_devices("all"))])
    with pytest.raises(RagkitError, match="`devices` is empty"):
        resolve_devices("")
    with pytest.raises(RagkitError, match="unknown device"):
        resolve_devices("tpu:0")
