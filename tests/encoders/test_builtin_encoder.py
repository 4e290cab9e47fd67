"""The shipped llm2vec-smollm2-135m: what the checkout holds, and that it beats the model it came from."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import SHARED_DATA, requires_smollm2
from safetensors.torch import load_file
from scipy.stats import spearmanr

from ragkit import Encoder, RagkitError
from ragkit.encoders import BUILTIN_ENCODERS, EncoderConfig
from ragkit.encoders.loading import BuiltinEncoder
from ragkit.encoders.supervised import query_prompt
from ragkit.eval.sts import STS_INSTRUCTION, read_sts

NAME = "llm2vec-smollm2-135m"


def test_shipped_adapters_are_fp16_in_training_order_and_name_the_builtin_base():
    builtin = BUILTIN_ENCODERS[NAME]
    assert [Path(a).name for a in builtin.adapters] == ["1-mntp", "2-supervised", "3-supervised", "4-distill"]
    for adapter in builtin.adapters:
        config = json.loads((Path(adapter) / "adapter_config.json").read_text())
        assert config["base_model_name_or_path"] == builtin.base == "smollm2-135m"
        weights = load_file(Path(adapter) / "adapter_model.safetensors")
        assert {w.dtype for w in weights.values()} == {torch.float16}
    config = EncoderConfig.read(builtin.directory)
    assert config.pooling == "mean" and config.bidirectional and config.query_instruction.endswith(": ")
    assert (builtin.directory / "README.md").is_file()


@requires_smollm2
def test_loads_offline_by_name_so_an_index_manifest_can_reload_it(smollm2):
    encoder = Encoder.load(NAME)
    assert encoder.config.source == NAME and encoder.config.adapters == []
    assert (
        encoder.config.query_instruction
        == EncoderConfig.read(BUILTIN_ENCODERS[NAME].directory).query_instruction
    )
    base = smollm2.model.state_dict()["layers.0.self_attn.q_proj.weight"]
    adapted = encoder.model.state_dict()["layers.0.self_attn.q_proj.weight"]
    assert not torch.equal(base, adapted)  # the adapters were merged


@requires_smollm2
def test_ranks_sentence_similarity_better_than_its_base(smollm2):
    path = SHARED_DATA / "sts/STSBenchmark/sts-test.csv"
    if not path.is_file():
        pytest.skip(f"real data file {path} is absent (it is present in CI)")
    first, second, gold, _ = read_sts(path)
    first, second, gold = first[:150], second[:150], gold[:150]
    prompt = query_prompt(STS_INSTRUCTION)  # how LLM2Vec scores STS, on both sentences

    def spearman(encoder: Encoder) -> float:
        a, b = encoder.encode(first, instruction=prompt), encoder.encode(second, instruction=prompt)
        return spearmanr(np.sum(a * b, axis=1), gold).statistic

    base, adapted = spearman(smollm2), spearman(Encoder.load(NAME))
    assert adapted > base + 0.05, (base, adapted)  # release 0.5 on these 150 pairs: 0.67 -> 0.85


def test_missing_files_say_how_to_fix_it(tmp_path):
    broken = BuiltinEncoder(tmp_path / "gone", base="smollm2-135m")
    with pytest.raises(RagkitError, match=r"missing from .*gone; reinstall ragkit"):
        _ = broken.adapters
