from __future__ import annotations

import gzip
import re
import shutil

import pytest
from helpers import CORPUS, shared_folder, write_beir

from ragkit.errors import RagkitError
from ragkit.eval.beir import read_beir


def test_reads_documents_judged_queries_and_graded_qrels(beir_dir):
    data = read_beir(beir_dir)
    assert data.split == "test"
    assert [d["id"] for d in data.corpus] == [d["_id"] for d in CORPUS]
    assert data.corpus[0] == {"id": "d1", "title": "Rivers", "text": CORPUS[0]["text"]}
    assert list(data.queries) == ["q1", "q2", "q3"]  # q4 has no judgments
    assert data.qrels == {"q1": {"d1": 2, "d4": 1}, "q2": {"d2": 1, "d6": 0}, "q3": {"d3": 1}}


def test_gzipped_corpus_and_the_only_split(tmp_path):
    folder = write_beir(tmp_path / "b", split="dev")
    raw = (folder / "corpus.jsonl").read_bytes()
    (folder / "corpus.jsonl").unlink()
    (folder / "corpus.jsonl.gz").write_bytes(gzip.compress(raw))
    data = read_beir(folder)
    assert data.split == "dev" and len(data.corpus) == len(CORPUS)


def test_real_cranfield_folder():
    data = read_beir(shared_folder("cranfield"))
    assert (len(data.corpus), len(data.queries)) == (1400, 225)
    assert sum(len(d) for d in data.qrels.values()) == 1837
    assert {g for d in data.qrels.values() for g in d.values()} == {0, 1, 2, 3, 4}


def _break(folder, file, lines):
    (folder / file).write_text("".join(lines))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda f: shutil.rmtree(f / "qrels"), "has no qrels/<split>.tsv"),
        (lambda f: (f / "queries.jsonl").unlink(), "has no queries.jsonl or queries.jsonl.gz"),
        (
            lambda f: _break(f, "corpus.jsonl", ['{"_id": "d1", "text": "a"}\n', '{"_id": "d2", "text": \n']),
            "corpus.jsonl:2: invalid JSON",
        ),
        (
            lambda f: _break(
                f, "corpus.jsonl", ['{"_id": "d1", "text": "a"}\n', '{"_id": "d1", "text": "b"}\n']
            ),
            "corpus.jsonl:2: duplicate document id 'd1'",
        ),
        (lambda f: _break(f, "queries.jsonl", ['{"text": "no id"}\n']), "queries.jsonl:1: no '_id' field"),
        (
            lambda f: _break(f, "qrels/test.tsv", ["query-id\tcorpus-id\tscore\n", "q1\tnope\t1\n"]),
            "test.tsv:2: document id 'nope' is not in the corpus",
        ),
        (
            lambda f: _break(f, "qrels/test.tsv", ["q1\td1\t1\n", "q9\td1\t1\n"]),
            "test.tsv:2: query id 'q9' is not in queries.jsonl",
        ),
        (
            lambda f: _break(f, "qrels/test.tsv", ["q1\td1\thigh\n"]),
            "test.tsv:1: score 'high' is not a number",
        ),
        (lambda f: _break(f, "qrels/test.tsv", ["q1 d1 1\n"]), "test.tsv:1: expected 3 tab-separated fields"),
    ],
)
def test_malformed_folders_name_the_file_and_line(beir_dir, damage, message):
    damage(beir_dir)
    with pytest.raises(RagkitError, match=re.escape(message)):
        read_beir(beir_dir)


def test_unknown_split_lists_the_available_ones(beir_dir):
    with pytest.raises(RagkitError, match=r"has no qrels/train\.tsv; its splits are test"):
        read_beir(beir_dir, "train")
