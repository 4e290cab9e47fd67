"""`ragkit eval`: tables, mteb results JSON, a comparison chart; malformed folders are one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import SHARED_DATA, requires_shared_data, run_ragkit, tiny_encoder, write_beir
from typer.testing import CliRunner

from ragkit.cli.app import app


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("RAGKIT_HOME", str(tmp_path / "home"))


@requires_shared_data
def test_bm25_on_a_real_folder_prints_the_table_and_writes_mteb_json(tmp_path):
    out = tmp_path / "results"
    result = CliRunner().invoke(
        app, ["eval", "--bm25", "--task", str(SHARED_DATA / "cranfield"), "--output", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "nDCG@10" in result.output and "cranfield" in result.output and "bm25" in result.output
    (summary,) = json.loads((out / "summary.json").read_text())
    task_json = json.loads(Path(summary["results_file"]).read_text())
    assert task_json["task_name"] == "cranfield"
    assert task_json["scores"]["test"][0]["ndcg_at_10"] == summary["scores"]["ndcg_at_10"]
    assert f"{summary['scores']['ndcg_at_10']:.4f}" in result.output


@requires_shared_data
def test_several_systems_get_a_comparison_table_and_chart(tmp_path):
    model = tiny_encoder().save(tmp_path / "tiny")
    out = tmp_path / "results"
    args = [
        "eval",
        "--bm25",
        "-m",
        str(model),
        "--task",
        str(SHARED_DATA / "cisi"),
        "--max-docs",
        "1300",
        "--output",
        str(out),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "nDCG@10 by system" in result.output and "mean" in result.output
    assert "corpus subsampled" in result.output  # flagged in the table
    assert (out / "ndcg_at_10.png").stat().st_size > 1000
    rows = json.loads((out / "summary.json").read_text())
    assert [r["system"] for r in rows] == ["bm25", "tiny"]
    assert all(
        r["subsample"] == {"kept": 1300, "total": 1460, "judged": 1162}
        for r in rows  # CISI judges 1162 documents
    )


def test_a_malformed_folder_is_a_one_line_error_naming_file_and_line(tmp_path):
    folder = write_beir(tmp_path / "bad")
    (folder / "queries.jsonl").write_text('{"_id": "q1", "text": "ok"}\n{"_id": "q2", "text": oops}\n')
    result = run_ragkit("eval", "--bm25", "--task", str(folder))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith(f"error: {folder / 'queries.jsonl'}:2: invalid JSON")
    )


def test_an_index_built_by_ragkit_index_is_scored_through_the_retriever(tmp_path):
    folder = write_beir(tmp_path / "toy")
    model = tiny_encoder().save(tmp_path / "tiny")
    runner = CliRunner()
    built = runner.invoke(
        app, ["index", str(folder / "corpus.jsonl"), "--index", str(tmp_path / "idx"), "-m", str(model)]
    )
    assert built.exit_code == 0, built.output
    out = tmp_path / "results"
    modes = ["--mode", "dense", "--mode", "hybrid", "--fusion", "rrf", "--weight", "0.3"]
    result = runner.invoke(
        app, ["eval", "--index", str(tmp_path / "idx"), *modes, "--task", str(folder), "--output", str(out)]
    )
    assert result.exit_code == 0, result.output
    dense, hybrid = json.loads((out / "summary.json").read_text())
    assert dense["system"] == "index:idx dense" and hybrid["system"] == "index:idx hybrid rrf 0.3"
    assert dense["documents"] == 6 and dense["queries"] == 3
    bad = runner.invoke(
        app, ["eval", "--index", str(tmp_path / "idx"), "--mode", "sparse", "--task", str(folder)]
    )
    assert bad.exit_code != 0 and "unknown search `mode` 'sparse'" in str(bad.exception)


def test_a_redirected_run_prints_whole_tables_and_plain_progress(tmp_path):
    folder = write_beir(tmp_path / "a-local-task-folder-with-a-rather-long-name-that-tables-must-keep")
    result = run_ragkit("eval", "--bm25", "--task", str(folder), "--output", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    header = next(line for line in result.stdout.splitlines() if "nDCG@10" in line and "MRR@10" in line)
    assert header.rstrip().endswith("docs")  # before: cut at 80 columns, the last columns dropped
    assert any(folder.name in line and "bm25" in line for line in result.stdout.splitlines())
