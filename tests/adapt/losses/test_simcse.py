"""SimCSE's noise: attention dropout is on while training and off in `encode`."""

from __future__ import annotations

import pytest
import torch
from helpers import SENTENCES, tiny_encoder

from ragkit import RagkitError
from ragkit.adapt.losses.simcse import set_attention_dropout


@pytest.mark.parametrize("family", ["llama", "qwen2", "mistral", "gemma"])
def test_dropout_makes_two_passes_differ_in_training_and_encode_is_exact(family):
    encoder = tiny_encoder(family)
    set_attention_dropout(encoder.model, 0.3)
    batch = encoder.tokenize(SENTENCES[:4])
    encoder.model.train()
    first, second = encoder.embed(batch), encoder.embed(batch)
    assert (first - second).abs().max() > 1e-4
    a, b = encoder.encode(SENTENCES[:4]), encoder.encode(SENTENCES[:4])
    assert (a == b).all()
    assert encoder.model.training  # encode put the model back as it found it
    encoder.model.eval()
    assert torch.equal(encoder.embed(batch), encoder.embed(batch))


def test_dropout_is_written_to_every_attention_module_and_the_config():
    encoder = tiny_encoder("llama")
    set_attention_dropout(encoder.model, 0.3)
    values = [m.attention_dropout for m in encoder.model.modules() if hasattr(m, "attention_dropout")]
    assert len(values) == 2 and set(values) == {0.3}
    assert encoder.model.config.attention_dropout == 0.3


def test_out_of_range_dropout_is_refused():
    with pytest.raises(RagkitError, match="attention dropout"):
        set_attention_dropout(tiny_encoder("llama").model, 1.0)
