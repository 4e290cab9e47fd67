"""Step 2 of LLM2Vec: masked next-token prediction (MNTP).

Mask some tokens of a bidirectional model's input and predict token i from the state at i-1: the
shift the causal LM head was trained with, so the head is reused as is and only LoRA weights learn.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from transformers import PreTrainedTokenizerBase

from ragkit.errors import RagkitError

IGNORE = -100  # label of a position that does not count in the loss

MaskReplacement = Literal["bert", "all"]


def mask_token_id(tokenizer: PreTrainedTokenizerBase) -> int:
    """The tokenizer's mask token, else "_" (LLM2Vec's choice for Llama-family tokenizers)."""
    if tokenizer.mask_token_id is not None:
        return tokenizer.mask_token_id
    ids = tokenizer("_", add_special_tokens=False)["input_ids"]
    if len(ids) != 1:
        raise RagkitError(
            "the tokenizer has no mask token and '_' is not a single token; set one with "
            "tokenizer.add_special_tokens({'mask_token': ...})"
        )
    return ids[0]


def maskable_positions(
    input_ids: torch.Tensor, attention_mask: torch.Tensor, special_ids: list[int]
) -> torch.Tensor:
    """Real, non-special tokens that have a predecessor (position 0 has no state at i-1)."""
    ok = attention_mask.bool() & ~torch.isin(input_ids, torch.tensor(special_ids, dtype=input_ids.dtype))
    ok[:, 0] = False
    return ok


def mask_tokens(
    input_ids: torch.Tensor,
    maskable: torch.Tensor,
    *,
    mask_id: int,
    vocab_size: int,
    ratio: float = 0.2,
    replacement: MaskReplacement = "bert",
    generator: torch.Generator | None = None,
    at_least_one: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, labels): labels hold the original id of each selected token and IGNORE elsewhere.

    "bert" replacement: 80% of the selected tokens become the mask token, 10% a random token, 10%
    stay; "all" (the paper's Mistral setting) masks every selected token. `at_least_one` selects a
    token where the draw selected none (a tiny batch); the reference's collator does not.
    """
    selected = (torch.rand(input_ids.shape, generator=generator) < ratio) & maskable
    if at_least_one and not selected.any() and maskable.any():  # a tiny batch drew nothing: select one
        selected.view(-1)[maskable.view(-1).nonzero()[0]] = True
    labels = torch.where(selected, input_ids, IGNORE)
    inputs = input_ids.clone()
    if replacement == "all":
        inputs[selected] = mask_id
        return inputs, labels
    u = torch.rand(input_ids.shape, generator=generator)
    inputs[selected & (u < 0.8)] = mask_id
    random_ids = torch.randint(vocab_size, input_ids.shape, generator=generator, dtype=input_ids.dtype)
    swap = selected & (u >= 0.8) & (u < 0.9)
    inputs[swap] = random_ids[swap]
    return inputs, labels  # the remaining 10% keep their token but still count in the loss


def mntp_loss(
    hidden: torch.Tensor, labels: torch.Tensor, lm_head: torch.nn.Module, softcap: float | None = None
):
    """Cross-entropy of token i predicted from the state at i-1, over masked positions only.

    The head runs only on the states that predict a masked token: with a 50k vocabulary that is
    most of MNTP's compute saved.
    """
    targets = labels[:, 1:].to(hidden.device)
    where = targets != IGNORE
    logits = lm_head(hidden[:, :-1][where]).float()
    if softcap:  # Gemma 2 caps its logits; the head was trained with the cap
        logits = softcap * torch.tanh(logits / softcap)
    return F.cross_entropy(logits, targets[where])


class MNTPLoss(torch.nn.Module):
    """Masked next token prediction: the masked token at position i is predicted from the state at
    i-1, as a decoder was pretrained to, while attention is bidirectional (LLM2Vec step 2).

    Args:
        lm_head: the decoder's output layer (frozen), mapping states to vocabulary logits.
        softcap: the model's final logit soft cap, if it has one (Gemma 2); the head was trained
            with it.

    References:
        BehnamGhader et al., 2024, "LLM2Vec: Large Language Models Are Secretly Powerful Text
        Encoders", section 2 (MNTP).
    """

    def __init__(self, lm_head: torch.nn.Module, softcap: float | None = None) -> None:
        super().__init__()
        self.lm_head, self.softcap = lm_head, softcap

    def forward(self, hidden: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The cross-entropy over masked positions only.

        Args:
            hidden: (batch, length, d) last-layer states of the masked inputs.
            labels: (batch, length) the original token where a token was masked, `IGNORE` elsewhere
                (from `mask_tokens`).

        Returns:
            A scalar loss.
        """
        return mntp_loss(hidden, labels, self.lm_head, self.softcap)
