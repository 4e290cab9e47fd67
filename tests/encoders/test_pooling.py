"""Pooling: which positions are averaged, for every padding side, with and without an instruction."""

from __future__ import annotations

import pytest
import torch
from helpers import SENTENCES, tiny_encoder

from ragkit import RagkitError
from ragkit.encoders.pooling import pool, pooled_mask

RIGHT = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]])
LEFT = torch.tensor([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]])


def test_mask_without_prompt_is_the_attention_mask():
    assert torch.equal(pooled_mask(RIGHT), RIGHT.bool())


def test_prompt_is_excluded_from_the_start_of_real_tokens_right_padding():
    mask = pooled_mask(RIGHT, torch.tensor([2, 3]))
    assert mask.int().tolist() == [[0, 0, 1, 1, 0, 0], [0, 0, 0, 1, 1, 1]]


def test_prompt_is_excluded_from_the_start_of_real_tokens_left_padding():
    mask = pooled_mask(LEFT, torch.tensor([2, 3]))
    assert mask.int().tolist() == [[0, 0, 0, 0, 1, 1], [0, 0, 0, 1, 1, 1]]


def test_row_with_no_text_tokens_falls_back_to_all_real_tokens():
    mask = pooled_mask(RIGHT, torch.tensor([4, 1]))
    assert mask.int().tolist() == [[1, 1, 1, 1, 0, 0], [0, 1, 1, 1, 1, 1]]


def test_mean_weighted_mean_and_last_token():
    hidden = torch.arange(2 * 6 * 1, dtype=torch.float32).reshape(2, 6, 1)  # value = flat position
    prompt = torch.tensor([1, 2])
    # row 0 (left padded): pooled positions 3, 4, 5; row 1: positions 2..5 (values 8..11)
    assert pool(hidden, LEFT, prompt, "mean").squeeze(-1).tolist() == [4.0, 9.5]
    weighted = pool(hidden, LEFT, prompt, "weighted_mean").squeeze(-1)
    assert torch.allclose(
        weighted, torch.tensor([(3 * 1 + 4 * 2 + 5 * 3) / 6, (8 + 9 * 2 + 10 * 3 + 11 * 4) / 10])
    )
    assert pool(hidden, RIGHT, prompt, "last_token").squeeze(-1).tolist() == [3.0, 11.0]
    assert pool(hidden, LEFT, prompt, "last_token").squeeze(-1).tolist() == [5.0, 11.0]


def test_unknown_mode_is_refused():
    with pytest.raises(RagkitError, match="unknown pooling"):
        pool(torch.zeros(1, 2, 3), torch.ones(1, 2), mode="max")


@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_encoder_excludes_exactly_bos_and_the_instruction_tokens(padding_side):
    encoder = tiny_encoder("llama", padding_side)
    instruction = "Retrieve passages about animals: "
    n_instruction = len(encoder.tokenizer(instruction, add_special_tokens=False)["input_ids"])
    batch = encoder.tokenize(SENTENCES[:2], instruction=instruction)
    assert batch["prompt_lengths"].tolist() == [1 + n_instruction] * 2  # BOS + instruction

    with torch.no_grad():
        hidden = encoder.model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            position_ids=(batch["attention_mask"].cumsum(-1) - 1).clamp(min=0),
        ).last_hidden_state
        pooled = encoder.embed(batch)
    for row, text in enumerate(SENTENCES[:2]):
        n_text = len(encoder.tokenizer(text, add_special_tokens=False)["input_ids"])
        real = batch["attention_mask"][row].nonzero().squeeze(-1)
        text_positions = real[1 + n_instruction :]
        assert len(text_positions) == n_text
        expected = hidden[row, text_positions].mean(0)
        torch.testing.assert_close(pooled[row], expected)
        with_prompt = hidden[row, real].mean(0)
        assert not torch.allclose(pooled[row], with_prompt, atol=1e-4)


def test_instruction_is_attended_to_so_text_vectors_change():
    encoder = tiny_encoder("llama")
    plain = encoder.encode(SENTENCES[:3])
    instructed = encoder.encode(SENTENCES[:3], instruction="Represent the sentence: ")
    assert (plain * instructed).sum(1).max() < 0.9999  # attended to: the text's states change


def test_every_pooling_mode_is_a_row_of_the_table_and_a_name_of_the_type():
    from typing import get_args

    from ragkit.encoders.pooling import POOLERS, PoolingMode

    assert set(get_args(PoolingMode)) == set(POOLERS)
    hidden, mask = torch.randn(2, 4, 3), torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    for mode in POOLERS:  # each mode gives one float vector per row, from real tokens only
        out = pool(hidden, mask, mode=mode)
        assert out.shape == (2, 3) and out.dtype == torch.float32
        changed = hidden.clone()
        changed[0, 3] = 100.0  # a padding position
        assert torch.equal(pool(changed, mask, mode=mode)[0], out[0])
