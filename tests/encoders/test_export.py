"""`Encoder.export`: a sentence-transformers directory that gives ragkit's vectors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import SENTENCES, requires_smollm2, run_ragkit, shared_folder, tiny_encoder

from ragkit import Encoder, RagkitError

st = pytest.importorskip("sentence_transformers", minversion="6")
UMASK = os.umask(0o022)
os.umask(UMASK)


def load(directory):
    return st.SentenceTransformer(str(directory), trust_remote_code=True, device="cpu")


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float((a * b).sum(axis=1).min())


@pytest.mark.parametrize(
    ("family", "padding_side", "settings"),
    [
        ("llama", "right", {}),
        ("gemma3_text", "left", {}),  # left padding: positions from the attention mask
        (
            "qwen2",
            "right",
            {"instruction_join": "llm2vec", "template": "qwen2-instruct", "doc_max_length": 8},
        ),
        ("mistral", "right", {"pooling": "eos_token"}),
    ],
)
def test_exported_vectors_equal_ragkits(family, padding_side, settings, tmp_path):
    encoder = tiny_encoder(family, padding_side, query_instruction="Find the passage: ", **settings)
    encoder.export(tmp_path / "st")
    model = load(tmp_path / "st")
    assert min_cosine(model.encode_document(SENTENCES), encoder.encode_documents(SENTENCES)) > 0.9999
    assert min_cosine(model.encode_query(SENTENCES), encoder.encode_queries(SENTENCES)) > 0.9999
    assert model[0].model.config.is_causal is False  # bidirectional attention kept


def test_the_export_loads_back_into_ragkit_and_refuses_what_it_cannot_match(tmp_path):
    encoder = tiny_encoder("llama", query_instruction="Find: ")
    encoder.export(tmp_path / "st")
    again = Encoder.load(tmp_path / "st")
    np.testing.assert_allclose(again.encode_queries(SENTENCES), encoder.encode_queries(SENTENCES), atol=1e-5)
    from ragkit.eval.models import RagkitModel, load_eval_model

    assert isinstance(load_eval_model(str(tmp_path / "st")), RagkitModel)  # eval reads it as ragkit's
    with pytest.raises(RagkitError, match="weighted_mean"):
        tiny_encoder("llama", pooling="weighted_mean").export(tmp_path / "wm")
    with pytest.raises(RagkitError, match="unknown export `format`"):
        encoder.export(tmp_path / "x", format="onnx")
    assert not (tmp_path / "wm").exists()


@requires_smollm2
def test_the_built_in_encoder_exported_gives_its_vectors_on_real_text(tmp_path):
    import gzip
    import itertools
    import json

    folder = shared_folder("scifact")
    with gzip.open(folder / "corpus.jsonl.gz", "rt") as f:
        documents = [row["title"] + "\n" + row["text"] for row in map(json.loads, itertools.islice(f, 8))]
    queries = [json.loads(line)["text"] for line in (folder / "queries.jsonl").read_text().splitlines()[:8]]
    result = run_ragkit("export", str(tmp_path / "st"))
    assert result.returncode == 0, result.stderr
    encoder = Encoder.load()
    model = load(tmp_path / "st")
    assert model.prompts["query"] == encoder.config.query_instruction
    assert min_cosine(model.encode_document(documents), encoder.encode_documents(documents)) >= 0.9999
    assert min_cosine(model.encode_query(queries), encoder.encode_queries(queries)) >= 0.9999


# `make test` installs sentence-transformers 5.x here (apart from the venv's 6.x) for the test below.
ST5 = Path(__file__).resolve().parents[2] / ".cache" / "sentence-transformers-5"
LOAD_WITH_ST5 = """
import json, sys
import sentence_transformers as st
from sentence_transformers import SentenceTransformer
model = SentenceTransformer(sys.argv[1], trust_remote_code=True, device="cpu")
texts = json.loads(sys.argv[2])
print(json.dumps({"version": st.__version__, "documents": model.encode(texts).tolist(),
                  "queries": model.encode(texts, prompt_name="query").tolist()}))
"""


@pytest.mark.skipif(
    not ST5.is_dir(), reason=f"sentence-transformers 5.x is not installed in {ST5} (make test does)"
)
def test_the_export_loads_in_sentence_transformers_5_too(tmp_path):
    encoder = tiny_encoder("llama", query_instruction="Find the passage: ")
    encoder.export(tmp_path / "st")
    environment = {**os.environ, "PYTHONPATH": str(ST5)}
    result = subprocess.run(
        [sys.executable, "-c", LOAD_WITH_ST5, str(tmp_path / "st"), json.dumps(SENTENCES)],
        capture_output=True,
        text=True,
        env=environment,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    loaded = json.loads(result.stdout.splitlines()[-1])
    assert loaded["version"].startswith("5.")
    assert min_cosine(np.array(loaded["documents"]), encoder.encode_documents(SENTENCES)) > 0.9999
    assert min_cosine(np.array(loaded["queries"]), encoder.encode_queries(SENTENCES)) > 0.9999


def test_exported_files_follow_the_users_umask(tmp_path):
    tiny_encoder("llama").export(tmp_path / "st")
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "st").rglob("*")}
    expected_file, expected_dir = 0o666 & ~UMASK, 0o777 & ~UMASK
    assert modes["model.safetensors"] == expected_file  # safetensors writes 0600 through a temporary file
    assert {m for name, m in modes.items() if (tmp_path / "st" / name).is_file()} <= {expected_file}
    assert (tmp_path / "st" / "1_Pooling").stat().st_mode & 0o777 == expected_dir


def _tree(directory: Path) -> dict[str, bytes]:
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in directory.rglob("*") if p.is_file()}


def test_a_folder_that_holds_files_is_refused_and_left_as_it_was(tmp_path):
    target = tmp_path / "mine"
    (target / "notes").mkdir(parents=True)
    (target / "thesis.tex").write_text("three years of work")
    (target / "notes" / "a.txt").write_text("a")
    before = _tree(target)
    with pytest.raises(RagkitError, match=r"is not empty .*`overwrite`"):
        tiny_encoder().export(target)
    assert _tree(target) == before
    (tmp_path / "a-file").write_text("keep me")
    with pytest.raises(RagkitError, match="is a file"):
        tiny_encoder().export(tmp_path / "a-file")
    assert (tmp_path / "a-file").read_text() == "keep me" and sorted(os.listdir(tmp_path)) == [
        "a-file",
        "mine",
    ]


def test_overwrite_replaces_only_what_an_export_writes(tmp_path):
    target = tmp_path / "model"
    tiny_encoder("llama").export(target)
    (target / "thesis.tex").write_text("three years of work")
    (target / "model.safetensors.index.json").write_text("{}")  # not the export's: kept
    recorded = json.loads((target / ".ragkit-export.json").read_text())["files"]
    (target / recorded[0]).write_text("stale")  # one of the export's files, changed by hand
    encoder = tiny_encoder("qwen2")
    encoder.export(target, overwrite=True)
    assert (target / "thesis.tex").read_text() == "three years of work"
    assert (target / "model.safetensors.index.json").read_text() == "{}"
    assert not [p for p in os.listdir(target) if p.startswith(".ragkit-export.tmp")]
    np.testing.assert_allclose(load(target).encode(SENTENCES[:2]), encoder.encode(SENTENCES[:2]), atol=1e-5)


def test_an_existing_empty_folder_and_the_current_folder_take_an_export(tmp_path, monkeypatch):
    (tmp_path / "empty").mkdir()
    tiny_encoder().export(tmp_path / "empty")
    assert (tmp_path / "empty" / "modules.json").is_file()
    here = tmp_path / "here"
    here.mkdir()
    (here / "keep.txt").write_text("mine")
    monkeypatch.chdir(here)
    with pytest.raises(RagkitError, match="is not empty"):
        tiny_encoder().export(".")
    tiny_encoder().export(".", overwrite=True)
    assert (here / "modules.json").is_file() and (here / "keep.txt").read_text() == "mine"


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (OSError(28, "No space left on device"), "disk holding .* is full"),
        (OSError(30, "Read-only file system"), r"cannot write to .* \(Read-only file system\)"),
        (RuntimeError("Error while serializing: IoError(Os { code: 28, kind: StorageFull })"), "is full"),
    ],
)
def test_a_full_or_read_only_disk_is_one_line_and_the_folder_is_kept(tmp_path, monkeypatch, error, message):
    encoder = tiny_encoder()
    target = tmp_path / "model"
    encoder.export(target)
    before = _tree(target)

    def fail(directory):
        raise error

    monkeypatch.setattr(encoder, "write_weights", fail)
    with pytest.raises(RagkitError, match=message):
        encoder.export(target, overwrite=True)
    with pytest.raises(RagkitError, match=message):
        encoder.export(tmp_path / "new")
    assert _tree(target) == before and sorted(os.listdir(tmp_path)) == ["model"]


def test_the_cli_refuses_a_non_empty_folder_before_loading_a_model(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    result = run_ragkit("export", str(tmp_path), "--model", "no/such-model")
    assert result.returncode == 1 and "--overwrite" in result.stderr and "Traceback" not in result.stderr
    assert os.listdir(tmp_path) == ["keep.txt"]
