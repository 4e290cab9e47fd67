"""Input formats: ragkit's (instruction tokenized apart) and the reference llm2vec's (joined as text,
user-turn templates, word cap), and their place in the saved config, the fingerprint and loading.

Vector parity with llm2vec itself is benchmarks/parity_llm2vec.py (tests/test_parity_llm2vec.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import SENTENCES, tiny_encoder, tiny_tokenizer
from test_loading import make_llm2vec_layout

from ragkit import Encoder, RagkitError
from ragkit.encoders import EncoderConfig
from ragkit.encoders.formatting import TEMPLATES, TextFormatter, reference_template
from ragkit.index import ChunkingConfig, Index, Retriever

INSTRUCTION = "Given a question, retrieve passages that answer it:"
TEXT = "Which river is the longest in Africa?"


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


def test_separate_join_keeps_the_texts_own_tokens_whatever_the_instruction(tok):
    ids, prompts = TextFormatter(tok)([TEXT], INSTRUCTION, 512)
    plain, no_prompt = TextFormatter(tok)([TEXT], None, 512)
    instruction_ids = tok(INSTRUCTION, add_special_tokens=False)["input_ids"]
    assert prompts == [1 + len(instruction_ids)]  # BOS + instruction
    assert ids[0] == [tok.bos_token_id, *instruction_ids, *plain[0][1:]]
    assert no_prompt == [1]


def test_llm2vec_join_tokenizes_one_string_and_pools_the_texts_trailing_tokens(tok):
    ids, prompts = TextFormatter(tok, instruction_join="llm2vec")([TEXT], INSTRUCTION + "  ", 512)
    assert ids[0] == tok(f"{INSTRUCTION} {TEXT}")["input_ids"]
    pooled = len(tok(TEXT, add_special_tokens=False)["input_ids"])
    assert prompts == [len(ids[0]) - pooled]
    # Without an instruction only BOS is left out, as llm2vec's embed mask does.
    ids, prompts = TextFormatter(tok, instruction_join="llm2vec")([TEXT], None, 512)
    assert ids[0] == tok(TEXT)["input_ids"] and prompts == [1]


def test_a_template_wraps_the_stripped_joined_text_and_its_suffix_is_pooled(tok):
    template = TEMPLATES["qwen2-instruct"]
    formatter = TextFormatter(tok, template=template, instruction_join="llm2vec")
    ids, prompts = formatter([f"{TEXT} \n"], INSTRUCTION, 512)
    assert ids[0] == tok(f"<|im_start|>user\n{INSTRUCTION} {TEXT}<|im_end|>")["input_ids"]
    pooled = len(tok(f"{TEXT}<|im_end|>", add_special_tokens=False)["input_ids"])
    assert len(ids[0]) - prompts[0] == pooled


def test_truncation_keeps_the_llm2vec_count_from_the_end(tok):
    ids, prompts = TextFormatter(tok, instruction_join="llm2vec")([TEXT * 20], "Find:", 24)
    assert len(ids[0]) == 24
    assert prompts == [0]  # the text alone fills max_length, so llm2vec pools every position


def test_the_word_cap_cuts_long_texts_to_whole_leading_words_under_the_cap(tok):
    formatter = TextFormatter(tok, instruction_join="llm2vec", doc_max_length=40)
    long_text = " ".join(SENTENCES * 10)
    capped = formatter.cap_words(long_text, 512)
    assert len(tok(capped, add_special_tokens=False)["input_ids"]) <= 40
    assert long_text.startswith(capped) and len(capped.split()) >= 10
    assert formatter.cap_words(TEXT, 512) == TEXT  # short texts untouched


def test_reference_templates_follow_llm2vecs_special_cases():
    assert (
        reference_template("meta-llama/Meta-Llama-3-8B-Instruct", "llama", "mean")
        == TEMPLATES["llama-3-instruct"]
    )
    assert reference_template("Qwen/Qwen2-7B-Instruct", "qwen2", "mean").startswith("<|im_start|>user\n")
    assert reference_template("princeton-nlp/Sheared-LLaMA-1.3B", "llama", "mean") == "{text}"
    # eos_token pooling appends the EOS as text, except after Llama-3-Instruct's turn
    assert (
        reference_template("mistralai/Mistral-7B-Instruct-v0.2", "mistral", "eos_token")
        == "[INST] {text} [/INST] </s>"
    )
    assert reference_template("meta-llama/Meta-Llama-3-8B", "llama", "eos_token") == "{text}<|end_of_text|>"
    assert reference_template("meta-llama/Meta-Llama-3-8B-Instruct", "llama", "eos_token").endswith(
        "<|eot_id|>"
    )
    assert reference_template("google/gemma-2-9b-it", "gemma2", "eos_token").endswith("<end_of_turn>")


def test_eos_token_pooling_pools_an_appended_eos_in_ragkits_format():
    encoder = tiny_encoder(pooling="eos_token")
    ids, _ = encoder.token_ids([TEXT])
    assert ids[0][-1] == encoder.tokenizer.eos_token_id
    last = tiny_encoder(pooling="last_token")
    assert not np.allclose(encoder.encode([TEXT]), last.encode([TEXT]))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"template": "chatml"}, "unknown `template` 'chatml'"),
        ({"template": "User: {query}"}, 'one "{text}" slot'),
        ({"instruction_join": "concat"}, "unknown `instruction_join`"),
        ({"doc_max_length": 0}, "doc_max_length must be at least 1"),
    ],
)
def test_bad_format_settings_are_one_line_errors_naming_the_option(kwargs, message):
    with pytest.raises(RagkitError, match=message.replace("{", r"\{").replace("(", r"\(")):
        EncoderConfig(**kwargs)


@pytest.mark.parametrize("join", ["separate", "llm2vec"])
def test_an_instruction_longer_than_max_length_is_a_one_line_error(join):
    encoder = tiny_encoder(max_length=8, instruction_join=join)
    with pytest.raises(RagkitError, match=r"the instruction takes \d+ tokens, `max_length` is 8"):
        encoder.encode([TEXT], instruction=INSTRUCTION)


def test_a_default_format_config_is_written_and_fingerprinted_as_before(tmp_path):
    encoder = tiny_encoder()
    encoder.config.write(tmp_path)
    written = json.loads((tmp_path / "ragkit_config.json").read_text())
    assert written["format_version"] == 1 and "template" not in written
    assert "template" not in encoder.fingerprint().config
    encoder.config.instruction_join = "llm2vec"
    encoder.config.write(tmp_path)
    assert json.loads((tmp_path / "ragkit_config.json").read_text())["format_version"] == 2
    assert EncoderConfig.read(tmp_path).instruction_join == "llm2vec"


def test_llm2vec_checkpoints_load_in_llm2vecs_format_and_ragkits_own_in_ragkits(tmp_path):
    _, mntp_dir, _ = make_llm2vec_layout(tmp_path, base_ref=str(tmp_path / "base"))
    published = Encoder.load(mntp_dir)
    assert (published.config.instruction_join, published.config.doc_max_length) == ("llm2vec", 400)
    assert Encoder.load(mntp_dir, input_format="ragkit").config.instruction_join == "separate"
    assert Encoder.load(tmp_path / "base").config.instruction_join == "separate"
    wrapped = Encoder.load(mntp_dir, template="llama-3-instruct")
    assert wrapped.config.template == TEMPLATES["llama-3-instruct"]
    published.save(tmp_path / "saved")  # saved, it keeps the format it was loaded with
    assert Encoder.load(tmp_path / "saved").config.instruction_join == "llm2vec"
    with pytest.raises(RagkitError, match="unknown `input_format`"):
        Encoder.load(mntp_dir, input_format="reference")


def test_an_index_records_the_input_format_and_queries_use_it(tmp_path):
    encoder = tiny_encoder(query_instruction="Find: ")
    encoder.save(tmp_path / "encoder")
    encoder = Encoder.load(tmp_path / "encoder", input_format="llm2vec", template="mistral-instruct")
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "a.txt").write_text("Paris is the capital of France.")
    (tmp_path / "corpus" / "b.txt").write_text("The cat sat on the mat.")
    Index.build(
        tmp_path / "corpus", encoder, tmp_path / "idx", chunking=ChunkingConfig(64, 8), show_progress=False
    )
    retriever = Retriever.load(tmp_path / "idx")
    assert retriever.encoder.config.template == "[INST] {text} [/INST]"
    assert retriever.encoder.config.instruction_join == "llm2vec"
    hit = retriever.search("capital city", k=1, mode="dense")[0]
    expected = (
        encoder.encode(["capital city"], instruction="Find: ")[0] @ encoder.encode_documents([hit.text])[0]
    )
    assert hit.score == pytest.approx(float(expected), abs=1e-5)
