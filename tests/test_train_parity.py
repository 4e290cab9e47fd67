"""The `paper` preset trains on exactly what llm2vec's own training scripts feed their losses.

Runs benchmarks/train_parity.py against the side environment `make reference` builds (CI does) and
llm2vec's experiment scripts in ../shared/peers/llm2vec-experiments; where either is absent the test
skips, except in CI, where it fails.
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
EXPERIMENTS = ROOT.parent / "shared" / "peers" / "llm2vec-experiments" / "experiments"


@requires_smollm2
def test_every_objective_and_rate_matches_the_reference_scripts(tmp_path):
    needed = (PEERS / "llm2vec-venv" / "bin" / "python", EXPERIMENTS, SHARED_DATA)
    if not all(p.exists() for p in needed):
        message = (
            f"the reference llm2vec ({PEERS}), its scripts or {SHARED_DATA} are absent: `make reference`"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    report = tmp_path / "train_parity.md"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "train_parity.py"), "--check", "--report", str(report)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    rows = [
        line for line in report.read_text().splitlines() if line.startswith("| ") and "| case" not in line
    ]
    assert len(rows) == 20 and all(row.endswith("| yes |") for row in rows)
    cells = {row.split(" | ")[0][2:]: row.split(" | ") for row in rows}
    assert cells["MNTP blocks (ids, special-tokens mask)"][2] == "equal"
    losses = [c for c in cells if "loss" in c and "by design" not in c]
    assert len(losses) == 4 and all(float(cells[c][3]) <= 1e-5 for c in losses)
