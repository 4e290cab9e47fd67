"""Queries written for passages: the prompt's output cleaned to one line, the per-passage cache that
lets an interrupted run write only what is missing, and the real generator's questions finding their
passages."""

from __future__ import annotations

import json

import pytest
import transformers
from helpers import TRAIN_SENTENCES, cranfield_passages, requires_smollm2, tiny_decoder_dir

from ragkit.adapt.synthetic import round_trip
from ragkit.querygen import (
    PROMPT_QUERIES,
    GenerationSettings,
    clean_query,
    generate_queries,
    read_cache,
    usable_query,
)


def test_a_query_is_the_first_generated_line_without_quotes():
    assert clean_query(' "how do wings stall"\nExample 4:\nDocument') == "how do wings stall"
    assert clean_query("\n\n") == ""


def test_a_usable_query_has_two_words_and_is_not_a_prompt_example():
    assert usable_query("wing stall speed")
    assert not usable_query("wings") and not usable_query("")
    assert not any(usable_query(q) for q in PROMPT_QUERIES)


@pytest.mark.parametrize("native", [True, False])
def test_native_settings_generate_in_bf16_only_where_the_device_computes_it(monkeypatch, native):
    from ragkit.encoders import precision

    monkeypatch.setattr(precision, "native_bf16", lambda device: native)
    settings = GenerationSettings.native("cpu", max_new_tokens=8)
    assert settings.dtype == ("bf16" if native else "float32")
    assert settings.max_new_tokens == 8 and settings.generator == GenerationSettings().generator


def test_generations_are_cached_and_an_interrupted_run_writes_only_what_is_missing(tmp_path, monkeypatch):
    generator = tiny_decoder_dir(tmp_path / "generator", max_position_embeddings=1024)
    settings = GenerationSettings(str(generator), max_new_tokens=4, batch_size=2, dtype="float32")
    cache = tmp_path / "queries.jsonl"
    first = generate_queries(TRAIN_SENTENCES[:6], settings, cache=cache, show_progress=False)
    assert len(first) == 6 and len(cache.read_text().splitlines()) == 6

    # A crash mid-write: two whole lines and a torn third. The rerun writes the other four again.
    lines = cache.read_text().splitlines()
    cache.write_text("\n".join(lines[:2]) + "\n" + lines[2][:10])
    loads = []
    real = transformers.AutoModelForCausalLM.from_pretrained
    monkeypatch.setattr(
        transformers.AutoModelForCausalLM,
        "from_pretrained",
        lambda *a, **kw: loads.append(a) or real(*a, **kw),
    )
    resumed = generate_queries(TRAIN_SENTENCES[:6], settings, cache=cache, show_progress=False)
    assert resumed == first and len(loads) == 1
    # Everything cached: the generator is not even loaded.
    assert generate_queries(TRAIN_SENTENCES[:6], settings, cache=cache, show_progress=False) == first
    assert len(loads) == 1


@requires_smollm2
def test_smollm2_writes_queries_that_find_their_passages(tmp_path):
    passages = cranfield_passages(400)
    sample = list(range(0, 400, 50))
    settings = GenerationSettings(max_new_tokens=24, batch_size=8)
    queries = generate_queries(
        [passages[i] for i in sample], settings, cache=tmp_path / "q.jsonl", show_progress=False
    )
    assert all(q and "\n" not in q for q in queries)
    assert sum(round_trip(queries, sample, passages, k=10)) >= len(sample) // 2


def test_a_cache_line_torn_inside_a_utf8_character_is_skipped_and_counted(tmp_path):
    cache = tmp_path / "q.jsonl"
    whole = json.dumps({"key": "k1", "query": "où est la gare"}, ensure_ascii=False).encode()
    torn = json.dumps({"key": "k2", "query": "café crème"}, ensure_ascii=False).encode()
    torn = torn[: torn.index("é".encode()) + 1]  # cut between the two bytes of "é"
    cache.write_bytes(whole + b"\n" + torn + b"\n" + b'{"key": "k3", "query": "later"}\n')
    done, skipped = read_cache(cache)
    assert done == {"k1": "où est la gare", "k3": "later"} and skipped == 1
