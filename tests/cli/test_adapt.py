"""`ragkit adapt`: options reach the API, one summary table, and the same command runs under torchrun."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import TRAIN_SENTENCES, tiny_decoder_dir
from typer.testing import CliRunner

from ragkit import Encoder
from ragkit.cli.app import app


@pytest.fixture
def tiny(tmp_path):
    """A tiny decoder to adapt and a file of sentences to adapt it on."""
    text = tmp_path / "sentences.txt"
    text.write_text("\n".join(TRAIN_SENTENCES))
    return tiny_decoder_dir(tmp_path / "lm"), text


def test_adapt_trains_saves_and_summarises(tiny, tmp_path):
    base, text = tiny
    config = tmp_path / "adapt.toml"
    config.write_text("[simcse]\nscale = 10.0\nbatch_size = 8\n")
    out = tmp_path / "enc"
    args = [
        "adapt",
        "--model",
        str(base),
        "--stages",
        "mntp,simcse",
        "--preset",
        "cpu-smoke",
        "--config",
        str(config),
        "--corpus",
        str(text),
        "--steps",
        "3",
        "--max-length",
        "32",
        "--out",
        str(out),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "mntp" in result.output and "simcse" in result.output and "loss.png" in result.output
    plan = json.loads((out / "training" / "plan.json").read_text())
    assert plan["stages"]["simcse"]["scale"] == 10.0 and plan["stages"]["simcse"]["batch_size"] == 8
    assert plan["stages"]["mntp"]["steps"] == plan["stages"]["simcse"]["steps"] == 3
    assert plan["stages"]["mntp"]["data"] == str(text)  # --corpus feeds both unsupervised stages
    assert Encoder.load(out).encode(["a text"]).shape == (1, 32)


def test_adapt_runs_under_torchrun_with_two_gloo_processes(tiny, tmp_path):
    base, text = tiny
    out = tmp_path / "enc"
    torchrun = Path(sys.executable).with_name("torchrun")
    ragkit = Path(sys.executable).with_name("ragkit")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run = subprocess.run(
        [
            str(torchrun),
            "--nproc-per-node",
            "2",
            "--master-port",
            str(port),
            str(ragkit),
            "adapt",
            "--model",
            str(base),
            "--stages",
            "mntp,simcse",
            "--preset",
            "cpu-smoke",
            "--corpus",
            str(text),
            "--steps",
            "3",
            "--batch-size",
            "8",
            "--max-length",
            "32",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("adapted ") == 1  # one summary, from rank 0
    log = (out / "training" / "log.csv").read_text().splitlines()
    assert len(log) == 1 + 2 * 3  # one log, written once
    assert Encoder.load(out).encode(["a text"]).shape == (1, 32)
