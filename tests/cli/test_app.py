"""The CLI: a thin layer over the API, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from helpers import SENTENCES, run_ragkit, tiny_encoder
from typer.testing import CliRunner

from ragkit import Encoder, RagkitError
from ragkit.cli.app import app
from ragkit.index import Retriever


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tiny_encoder("llama").save(tmp_path_factory.mktemp("enc") / "tiny")


def test_embed_prints_the_similarity_matrix_and_saves_what_the_api_returns(model_dir, tmp_path):
    out = tmp_path / "v.npy"
    result = CliRunner().invoke(app, ["embed", *SENTENCES[:3], "--model", str(model_dir), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "cosine similarity" in result.output and "embedded 3 texts" in result.output
    np.testing.assert_array_equal(np.load(out), Encoder.load(model_dir).encode(SENTENCES[:3]))


def test_embed_reads_a_file_and_passes_options_through(model_dir, tmp_path):
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(SENTENCES) + "\n\n")
    out = tmp_path / "v.npy"
    args = [
        "embed",
        "-f",
        str(texts),
        "-m",
        str(model_dir),
        "--causal",
        "--pooling",
        "last_token",
        "--out",
        str(out),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    expected = Encoder.load(model_dir, bidirectional=False, pooling="last_token").encode(SENTENCES)
    np.testing.assert_array_equal(np.load(out), expected)


def test_user_errors_surface_as_ragkit_errors(model_dir):
    result = CliRunner().invoke(app, ["embed", "--model", str(model_dir)])
    assert isinstance(result.exception, RagkitError)


ERROR_CASES = [
    (["embed", "--model", "no-such-model", "hello"], "error: unknown model 'no-such-model'"),
    (["embed", "--file", "/no/such/file.txt"], "error: --file /no/such/file.txt does not exist"),
    (["index", "/no/such/folder"], "error: corpus path /no/such/folder does not exist"),
    (["query", "x", "--index", "/no/such/index"], "error: no index at /no/such/index"),
    (["adapt", "--out", "/no/such/out", "--stages", "simcse,mntp"], "error: stages out of order"),
    (["adapt", "--out", "/no/such/out", "--preset", "huge"], "error: unknown preset 'huge'"),
    (["adapt", "--out", "/no/such/out", "--config", "/no/such.toml"], "error: config file not found"),
    (
        ["adapt", "--out", "/no/such/out", "--corpus", "/no/such/dir"],
        "error: --corpus /no/such/dir does not",
    ),
    (["eval", "--bm25", "--task", "SciFakt"], "error: unknown task 'SciFakt': did you mean SciFact"),
    (["eval", "--bm25", "--task", "/no/such/beir"], "error: task folder /no/such/beir does not exist"),
    (["eval", "--index", "/no/such/index", "--task", "SciFact"], "error: no index at /no/such/index"),
    (["embed", "--file", sys.executable], f"error: {sys.executable} is a binary file"),
    # Library errors name Python parameters; the CLI shows the flags.
    (
        ["index", "README.md", "--pca", "8", "--dim", "8"],
        "error: choose one of --pca and --dim, not both",
    ),
    (["index", "README.md", "--whiten"], "error: --whiten applies to --pca only"),
    (["embed", "--template", "chatml", "x"], "error: unknown --template 'chatml'"),
    (["embed", "--template", "User: {query}", "x"], "error: unknown --template 'User: {query}'"),
    (["embed", "--input-format", "reference", "x"], "error: unknown --input-format 'reference'"),
]

# One fresh process runs `main()` once per case, as `ragkit` would in a process of its own (seventeen
# processes took two and a half minutes of CI, loading torch each time).
EACH_MAIN = """
import contextlib, io, json, sys
from ragkit.cli.app import main
results = []
for args in json.loads(sys.argv[1]):
    sys.argv, stderr, code = ["ragkit", *args], io.StringIO(), 0
    with contextlib.redirect_stderr(stderr):
        try:
            main()
        except SystemExit as exit:
            code = exit.code
    results.append([code, stderr.getvalue()])
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def error_runs() -> list[tuple[int, str]]:
    args = json.dumps([case for case, _ in ERROR_CASES])
    done = subprocess.run([sys.executable, "-c", EACH_MAIN, args], capture_output=True, text=True, check=True)
    return [tuple(result) for result in json.loads(done.stdout.splitlines()[-1])]


@pytest.mark.parametrize("case", range(len(ERROR_CASES)), ids=[" ".join(a)[:40] for a, _ in ERROR_CASES])
def test_errors_are_one_line_without_traceback(error_runs, case):
    code, stderr = error_runs[case]
    assert code == 1
    assert stderr.strip().startswith(ERROR_CASES[case][1])
    assert len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr


def test_info_reports_the_faiss_build():
    result = CliRunner().invoke(app, ["info"])
    assert result.exit_code == 0 and "faiss" in result.output and "smollm2-135m" in result.output


def test_version_and_extras_in_help_survive_rich_markup():
    from ragkit import __version__

    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"ragkit {__version__}"
    for command, extra in (("index", "ragkit[ray]"), ("query", "ragkit[rerank]")):
        help_text = " ".join(run_ragkit(command, "--help").stdout.replace("│", " ").split())
        assert extra in help_text, command  # rich would read "[ray]" as markup and drop it


def test_embed_query_applies_the_encoders_query_instruction(model_dir, tmp_path):
    encoder = Encoder.load(model_dir)
    encoder.config.query_instruction = "Find the sentence: "
    saved = encoder.save(tmp_path / "with-instruction")
    out = tmp_path / "q.npy"
    result = CliRunner().invoke(app, ["embed", SENTENCES[0], "--query", "-m", str(saved), "--out", str(out)])
    assert result.exit_code == 0, result.output
    queried = Encoder.load(saved)
    np.testing.assert_array_equal(np.load(out), queried.encode_queries([SENTENCES[0]]))
    assert not np.allclose(np.load(out), queried.encode([SENTENCES[0]]))  # the instruction changed it


def test_index_then_query_prints_json_hits_from_the_api(model_dir, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i, text in enumerate(SENTENCES):
        (corpus / f"{i}.txt").write_text(text)
    index_dir = tmp_path / "idx"
    result = CliRunner().invoke(app, ["index", str(corpus), "--index", str(index_dir), "-m", str(model_dir)])
    assert result.exit_code == 0, result.output
    assert f"{len(SENTENCES)} files" in result.output and f"{len(SENTENCES)} added" in result.output

    args = ["query", SENTENCES[2], "--index", str(index_dir), "-k", "3", "--json", "--filter", "path=*.txt"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    hits = json.loads(result.output)
    assert hits[0]["path"] == "2.txt" and len(hits) == 3
    expected = Retriever.load(index_dir).search(SENTENCES[2], k=3)
    assert [h["chunk_id"] for h in hits] == [h.chunk_id for h in expected]

    table = CliRunner().invoke(app, ["query", "cat", "--index", str(index_dir), "-k", "2"])
    assert table.exit_code == 0 and "score" in table.output and "snippet" in table.output

    again = CliRunner().invoke(app, ["index", str(corpus), "--index", str(index_dir), "-m", str(model_dir)])
    assert f"0 added, 0 updated, 0 removed, {len(SENTENCES)} unchanged" in again.output


def test_a_bad_filter_is_a_user_error(model_dir, tmp_path):
    result = CliRunner().invoke(app, ["query", "x", "--index", str(tmp_path), "--filter", "nokey"])
    assert isinstance(result.exception, RagkitError) and "KEY=GLOB" in str(result.exception)


def test_adapt_help_shows_the_config_example_whole():
    result = run_ragkit("adapt", "--help")
    assert "[mntp] steps = 500" in " ".join(result.stdout.replace("│", " ").split())  # before: "e.g.  steps"


def test_a_second_index_run_on_the_same_index_is_refused_in_one_line(model_dir, tmp_path):
    from ragkit.index.lock import writer_lock

    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("some text")
    with writer_lock(tmp_path / "idx"):  # a first `ragkit index` still running
        result = run_ragkit(
            "index", str(tmp_path / "docs"), "--index", str(tmp_path / "idx"), "-m", str(model_dir)
        )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"error: index {tmp_path / 'idx'} is being updated by PID {os.getpid()}; wait for it to finish, "
        "then run again"
    )
    # The lock is taken before the model loads: a model that does not exist is never even looked for.
    with writer_lock(tmp_path / "idx"):
        result = run_ragkit(
            "index", str(tmp_path / "docs"), "--index", str(tmp_path / "idx"), "-m", "nope/none"
        )
    assert "is being updated by PID" in result.stderr and "nope" not in result.stderr


def test_the_writer_lock_is_reentrant_in_a_thread_and_exclusive_across_threads(tmp_path):
    import threading

    from ragkit.index.lock import writer_lock

    refused = []
    with writer_lock(tmp_path / "idx"), writer_lock(tmp_path / "idx"):  # the CLI, then the build inside
        thread = threading.Thread(target=lambda: refused.append(_try_lock(tmp_path / "idx")))
        thread.start()
        thread.join()
    assert refused == ["another thread of this process"]
    with writer_lock(tmp_path / "idx"):  # released whole at the end
        pass


def _try_lock(path) -> str:
    from ragkit.index.lock import writer_lock

    try:
        with writer_lock(path):
            return "taken"
    except RagkitError as e:
        return "another thread of this process" if "another thread of this process" in str(e) else str(e)


def test_format_options_reach_the_encoder_and_a_long_instruction_is_a_one_line_error(model_dir, tmp_path):
    out = tmp_path / "v.npy"
    args = ["embed", *SENTENCES[:2], "-m", str(model_dir), "--instruction", "Find:", "--out", str(out)]
    result = CliRunner().invoke(app, [*args, "--input-format", "llm2vec", "--template", "mistral-instruct"])
    assert result.exit_code == 0, result.output
    encoder = Encoder.load(model_dir, input_format="llm2vec", template="mistral-instruct")
    np.testing.assert_array_equal(np.load(out), encoder.encode(SENTENCES[:2], instruction="Find:"))
    assert not np.allclose(np.load(out), Encoder.load(model_dir).encode(SENTENCES[:2], instruction="Find:"))

    result = run_ragkit(
        "embed", "x", "-m", str(model_dir), "--max-length", "4", "--instruction", "Find: " * 8
    )
    assert result.returncode == 1
    assert result.stderr.strip().startswith("error: the instruction takes")
    assert "raise --max-length" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_ctrl_c_during_ragkit_index_says_what_was_kept_and_that_a_rerun_resumes(
    model_dir, tmp_path, monkeypatch, capfd
):
    from ragkit.cli import app as app_module
    from ragkit.index import Index

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(Index, "build", staticmethod(interrupted))
    index_dir = tmp_path / "idx"
    monkeypatch.setattr(
        sys, "argv", ["ragkit", "index", "examples/corpus", "--index", str(index_dir), "-m", str(model_dir)]
    )
    with pytest.raises(SystemExit) as exit:
        app_module.main()
    err = capfd.readouterr().err
    assert exit.value.code == 130
    assert (
        "interrupted:" in err
        and "is not built yet" in err
        and "running the same command again resumes" in err
    )
