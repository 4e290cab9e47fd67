"""`ragkit adapt`: options reach the API, a summary table, one-line errors, Ctrl-C says how to resume."""

from __future__ import annotations

import json
import subprocess
import sys

from helpers import TRAIN_SENTENCES, tiny_decoder_dir
from typer.testing import CliRunner

from ragkit import Encoder
from ragkit.cli.app import app


def test_adapt_trains_saves_and_summarises(tmp_path):
    base = tiny_decoder_dir(tmp_path / "lm")
    text = tmp_path / "sentences.txt"
    text.write_text("\n".join(TRAIN_SENTENCES))
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


def test_adapt_errors_are_one_line(tmp_path):
    cases = [
        (["--stages", "simcse,mntp"], "stages out of order"),
        (["--preset", "huge"], "unknown preset 'huge'"),
        (["--config", str(tmp_path / "none.toml")], "config file not found"),
        (["--corpus", str(tmp_path / "none")], "does not exist"),
    ]
    for extra, message in cases:
        run = subprocess.run(
            [
                sys.executable,
                "-c",
                "from ragkit.cli.app import main; main()",
                "adapt",
                "--out",
                str(tmp_path / "o"),
                *extra,
            ],
            capture_output=True,
            text=True,
        )
        assert run.returncode == 1, run.stderr
        assert run.stderr.strip().splitlines() == [f"error: {run.stderr.strip()[7:]}"]
        assert message in run.stderr
