"""A small BEIR folder, written fresh for each test."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import write_beir


@pytest.fixture
def beir_dir(tmp_path) -> Path:
    return write_beir(tmp_path / "toy")
