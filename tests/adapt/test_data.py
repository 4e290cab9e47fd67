"""Training data readers: every supported layout, and errors that name the file and line."""

from __future__ import annotations

import gzip
import json

import pytest
from helpers import SHARED_DATA, requires_shared_data

from ragkit import RagkitError
from ragkit.adapt import stage_configs
from ragkit.adapt.data import read_examples, read_texts, training_sentences
from ragkit.encoders.supervised import E5_INSTRUCTIONS


def test_text_files_give_one_passage_per_non_empty_line(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("first line\n\n  second line  \n")
    assert list(read_texts(str(path))) == ["first line", "second line"]


def test_jsonl_text_and_paragraphs_gzipped_or_not(tmp_path):
    path = tmp_path / "a.jsonl.gz"
    with gzip.open(path, "wt") as f:
        f.write(json.dumps({"text": "one"}) + "\n" + json.dumps({"paragraphs": ["two", "three"]}) + "\n")
    assert list(read_texts(str(path))) == ["one", "two", "three"]


def test_a_folder_is_read_as_a_corpus(tmp_path):
    (tmp_path / "a.md").write_text("# Title\n\nBody text.")
    (tmp_path / "b.txt").write_text("Plain text.")
    assert list(read_texts(str(tmp_path))) == ["# Title\n\nBody text.", "Plain text."]


def test_pydoc_is_real_prose_available_offline():
    passages = list(read_texts("pydoc"))
    assert len(passages) > 1000 and sum(map(len, passages)) > 300_000
    assert len(read_examples("pydoc")) > 100


def test_sentences_are_split_and_fragments_dropped():
    text = "Dr. Smith arrived. He sat down! Was it 3 p.m.? Yes. The end of the story came at last."
    assert training_sentences(text) == [
        "Dr. Smith arrived.",
        "He sat down!",
        "Was it 3 p.m.?",
        "The end of the story came at last.",
    ]


def test_pair_formats_and_instructions(tmp_path):
    folder = tmp_path / "e5"
    folder.mkdir()
    (folder / "msmarco_passage.jsonl").write_text(
        json.dumps({"query": "q1", "positive": "p1", "negative": ["n1", "n2"]}) + "\n"
    )
    (folder / "mine.jsonl").write_text(
        json.dumps({"anchor": "q2", "positive": "p2", "negative": "n3", "instruction": "Own task"})
        + "\n"
        + json.dumps({"query": "q3", "positive": "p3"})
        + "\n"
    )
    examples = read_examples(str(folder), instruction=None, negatives=1)
    assert [(e.query, e.positive, e.negatives, e.instruction) for e in examples] == [
        ("q2", "p2", ["n3"], "Own task"),
        ("q3", "p3", [], "Given a query, retrieve passages relevant to it"),
        ("q1", "p1", ["n1"], "Given a web search query, retrieve relevant passages that answer the query"),
    ]


def test_two_instruction_datasets_take_them_in_turn_and_examples_know_their_dataset(tmp_path):
    path = tmp_path / "quora_duplicates.jsonl"
    path.write_text("".join(json.dumps({"query": f"q{i}", "positive": f"p{i}"}) + "\n" for i in range(3)))
    examples = read_examples(str(path), instruction="ignored for an E5 dataset")
    assert [e.instruction.split()[0] for e in examples] == ["Given", "Find", "Given"]  # llm2vec's E5 loader
    assert {e.dataset for e in examples} == {"quora_duplicates"}


@requires_shared_data
def test_snli_rows_become_premise_entailment_contradiction_triplets():
    path = SHARED_DATA / "nli" / "snli_1.0_subset" / "snli_1.0_dev.subset.jsonl"
    examples = read_examples(str(path))
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    label = {(r["sentence1"], r["sentence2"]): r["gold_label"] for r in rows}
    assert len(examples) > 300
    assert {e.dataset for e in examples} == {"allnli"}
    assert {e.instruction for e in examples[:2]} == set(E5_INSTRUCTIONS["allnli"])
    for e in examples[:50]:
        assert label[(e.query, e.positive)] == "entailment"
        assert all(label[(e.query, n)] == "contradiction" for n in e.negatives)


def test_bad_rows_name_the_file_and_line(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps({"query": "q", "positive": "p"}) + "\n{not json\n")
    with pytest.raises(RagkitError, match=r"pairs.jsonl:2: invalid JSON"):
        read_examples(str(path))
    path.write_text(json.dumps({"query": "q", "positive": "p"}) + "\n" + json.dumps({"query": "q"}) + "\n")
    with pytest.raises(RagkitError, match=r"pairs.jsonl:2: expected string fields 'query'"):
        read_examples(str(path))
    with pytest.raises(RagkitError, match="not found"):
        list(read_texts(str(tmp_path / "missing.txt")))


def test_an_unreachable_hub_dataset_says_what_to_do_instead(monkeypatch):
    import datasets
    import huggingface_hub

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    # Both are read at import: without these the libraries still try the network, with retries.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True, raising=False)
    with pytest.raises(RagkitError, match="offline, pass a local file or folder"):
        list(read_texts("no-such-org/no-such-dataset"))


def test_toml_tables_override_the_preset_per_stage(tmp_path):
    path = tmp_path / "adapt.toml"
    path.write_text('[mntp]\nsteps = 7\nmask_ratio = 0.8\nreplacement = "all"\n')
    configs = stage_configs(["mntp", "simcse"], "cpu-smoke", path, lr=1e-4)
    assert (configs["mntp"].steps, configs["mntp"].mask_ratio, configs["mntp"].replacement) == (7, 0.8, "all")
    assert configs["simcse"].steps == 20 and configs["mntp"].lr == configs["simcse"].lr == 1e-4
    paper = stage_configs(["mntp", "simcse", "supervised"])
    assert (paper["mntp"].lr, paper["mntp"].batch_size, paper["mntp"].max_length) == (5e-5, 32, 512)
    assert (paper["simcse"].lr, paper["simcse"].batch_size, paper["simcse"].attention_dropout) == (
        3e-5,
        128,
        0.3,
    )
    assert (paper["supervised"].lr, paper["supervised"].warmup_steps, paper["supervised"].scale) == (
        2e-4,
        300,
        50,
    )
    path.write_text('[mntp]\nsteps = "many"\n')
    with pytest.raises(RagkitError, match="mntp: steps must be int, got 'many'"):
        stage_configs(["mntp"], file=path)
    path.write_text("[mlm]\nsteps = 1\n")
    with pytest.raises(RagkitError, match=r"unknown table \[mlm\]"):
        stage_configs(["mntp"], file=path)
