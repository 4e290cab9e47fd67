"""ragkit in llm2vec's input format gives the reference llm2vec 0.2.3's own vectors, case by case.

Runs benchmarks/parity_llm2vec.py against the side environment `make reference` builds (CI does);
where it is absent the test skips, except in CI, where it fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import SHARED_DATA, requires_smollm2

ROOT = Path(__file__).resolve().parents[1]
PEERS = Path(os.environ.get("PEERS", Path.home() / ".cache" / "ragkit-peers"))


@requires_smollm2
def test_every_case_matches_the_reference_llm2vec(tmp_path):
    if not (PEERS / "llm2vec-venv" / "bin" / "python").exists() or not SHARED_DATA.is_dir():
        message = f"the reference llm2vec ({PEERS}) or {SHARED_DATA} is absent: run `make reference`"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    report = tmp_path / "parity.md"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "parity_llm2vec.py"), "--texts", "8", "--check",
         "--fp32-only", "--report", str(report)],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    rows = [
        line
        for line in report.read_text().splitlines()
        if line.startswith("| ") and not line.startswith("| case")
    ]
    assert len(rows) == 12  # every case of the table was scored
    assert all(float(row.split(" | ")[2]) >= 0.9999 for row in rows)
