"""Shared file reading: suffixes under .gz, text opening, line-numbered JSON lines, Hub ids."""

from __future__ import annotations

import gzip

import pytest

from ragkit import RagkitError
from ragkit.io import inner_suffix, is_hub_id, json_lines, open_text, read_json_lines


def test_inner_suffix_looks_under_gz():
    assert inner_suffix("corpus.jsonl.gz") == ".jsonl"
    assert inner_suffix("A.TXT") == ".txt" and inner_suffix("README") == "" and inner_suffix("x.gz") == ""


def test_open_text_gunzips(tmp_path):
    with gzip.open(tmp_path / "a.txt.gz", "wt") as f:
        f.write("café\n")
    with open_text(tmp_path / "a.txt.gz") as f:
        assert f.read() == "café\n"


def test_json_lines_name_the_file_and_line(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"a": 1}\n\n{"a": 2}\n{broken\n')
    rows = read_json_lines(path)
    assert next(rows) == (1, {"a": 1}) and next(rows) == (3, {"a": 2})
    with pytest.raises(RagkitError, match=r"rows.jsonl:4: invalid JSON"):
        next(rows)
    with pytest.raises(RagkitError, match=r"x:1: expected a JSON object, got list"):
        list(json_lines(["[1, 2]"], "x"))
    assert list(json_lines(["[1, 2]"], "x", objects=False)) == [(1, [1, 2])]


def test_an_unreadable_json_lines_file_is_a_one_line_error(tmp_path):
    (tmp_path / "bad.jsonl.gz").write_bytes(b"not gzip at all")
    with pytest.raises(RagkitError, match="cannot read it"):
        list(read_json_lines(tmp_path / "bad.jsonl.gz"))


def test_hub_ids_are_told_from_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert is_hub_id("McGill-NLP/LLM2Vec-Mistral-7B-Instruct-v2-mntp")
    assert not is_hub_id("org/name:config") and is_hub_id("org/name:config", config=True)
    assert not is_hub_id("just-a-name") and not is_hub_id("a/b/c")
    (tmp_path / "org" / "model").mkdir(parents=True)
    assert not is_hub_id("org/model")  # an existing local folder wins
