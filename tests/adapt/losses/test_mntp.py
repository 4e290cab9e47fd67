"""MNTP: which tokens are masked, how, and that token i is predicted from the state at i-1."""

from __future__ import annotations

import pytest
import torch
from helpers import tiny_tokenizer

from ragkit import RagkitError
from ragkit.adapt.losses.mntp import IGNORE, mask_token_id, mask_tokens, maskable_positions, mntp_loss


def test_mask_token_falls_back_to_underscore_and_prefers_a_real_mask_token():
    tok = tiny_tokenizer()
    assert tok.mask_token is None
    assert tok.convert_ids_to_tokens(mask_token_id(tok)) == "_"
    tok.add_special_tokens({"mask_token": "<mask>"})
    assert mask_token_id(tok) == tok.convert_tokens_to_ids("<mask>")


def test_special_tokens_padding_and_the_first_position_are_never_masked():
    ids = torch.tensor([[1, 50, 51, 52, 2, 0], [1, 60, 61, 0, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 0], [1, 1, 1, 0, 0, 0]])
    ok = maskable_positions(ids, mask, special_ids=[0, 1, 2])
    assert ok.tolist() == [[False, True, True, True, False, False], [False, True, True, False, False, False]]
    first_is_text = maskable_positions(torch.tensor([[50, 51]]), torch.ones(1, 2), special_ids=[1])
    assert first_is_text.tolist() == [[False, True]]  # no state at i-1 to predict it from


def test_bert_replacement_proportions_and_labels():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(10, 1000, (64, 512), generator=g)
    maskable = torch.ones_like(ids, dtype=torch.bool)
    maskable[:, 0] = False
    inputs, labels = mask_tokens(ids, maskable, mask_id=5, vocab_size=1000, ratio=0.2, generator=g)
    selected = labels != IGNORE
    assert selected.float().mean().item() == pytest.approx(0.2, abs=0.005)
    assert not selected[:, 0].any()
    assert torch.equal(labels[selected], ids[selected])  # labels are the original tokens
    assert torch.equal(inputs[~selected], ids[~selected])  # nothing else changes
    masked = (inputs[selected] == 5).float().mean().item()
    kept = (inputs[selected] == ids[selected]).float().mean().item()
    assert masked == pytest.approx(0.8, abs=0.01)
    assert kept == pytest.approx(0.1 + 0.1 / 1000, abs=0.01)  # 10% kept, plus random draws of the same id


def test_all_replacement_masks_every_selected_token():
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(10, 1000, (8, 256), generator=g)
    inputs, labels = mask_tokens(
        ids,
        torch.ones_like(ids, dtype=torch.bool),
        mask_id=5,
        vocab_size=1000,
        ratio=0.8,
        replacement="all",
        generator=g,
    )
    selected = labels != IGNORE
    assert selected.float().mean().item() == pytest.approx(0.8, abs=0.02)
    assert (inputs[selected] == 5).all()


def test_a_tiny_batch_always_has_one_masked_token():
    ids = torch.tensor([[1, 7, 8]])
    maskable = torch.tensor([[False, True, True]])
    _, labels = mask_tokens(ids, maskable, mask_id=5, vocab_size=10, ratio=1e-9)
    assert (labels != IGNORE).sum() == 1


def _onehot_states(predicts: torch.Tensor, vocab: int) -> torch.Tensor:
    """States whose identity LM head puts all mass on `predicts` (one token per position)."""
    return 30.0 * torch.nn.functional.one_hot(predicts, vocab).float()


def test_token_i_is_predicted_from_the_state_at_i_minus_1():
    vocab = 8
    tokens = torch.tensor([[1, 3, 5, 7, 2, 4]])
    head = torch.nn.Identity()
    labels = torch.full_like(tokens, IGNORE)
    labels[0, [2, 4]] = tokens[0, [2, 4]]
    # State j "predicts" token j+1: right only if the loss reads position i from state i-1.
    shifted = _onehot_states(torch.roll(tokens, -1, dims=1), vocab)
    aligned = _onehot_states(tokens, vocab)  # state j predicts token j: what an unshifted loss wants
    assert mntp_loss(shifted, labels, head).item() < 1e-6
    assert mntp_loss(aligned, labels, head).item() > 10


def test_unmasked_positions_contribute_nothing():
    vocab = 8
    tokens = torch.tensor([[1, 3, 5, 7, 2, 4]])
    labels = torch.full_like(tokens, IGNORE)
    labels[0, 3] = 7
    hidden = torch.randn(1, 6, vocab, requires_grad=True)
    loss = mntp_loss(hidden, labels, torch.nn.Identity())
    loss.backward()
    nonzero = hidden.grad[0].abs().sum(-1) > 0
    assert nonzero.tolist() == [False, False, True, False, False, False]  # only the state at 3 - 1


def test_softcap_is_applied_to_the_logits():
    labels = torch.tensor([[IGNORE, 0]])
    hidden = torch.tensor([[[100.0, 0.0], [0.0, 0.0]]])
    uncapped = mntp_loss(hidden, labels, torch.nn.Identity())
    capped = mntp_loss(hidden, labels, torch.nn.Identity(), softcap=1.0)
    assert uncapped.item() < 1e-6 and capped.item() > 0.1


def test_no_single_token_mask_is_an_error():
    class NoMask:
        mask_token_id = None

        def __call__(self, text, add_special_tokens):
            return {"input_ids": [4, 5]}

    with pytest.raises(RagkitError, match="mask token"):
        mask_token_id(NoMask())
