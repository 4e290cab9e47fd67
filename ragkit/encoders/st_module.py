"""A sentence-transformers module that tokenizes and masks texts exactly as a ragkit `Encoder` does.

`ragkit export` copies this file (as ragkit_transformer.py) and ragkit's formatting.py (as
ragkit_formatting.py) next to the weights, so that `SentenceTransformer(DIR, trust_remote_code=True)`
gives ragkit's vectors without ragkit installed. Why a module of its own: sentence-transformers
joins a prompt and a text as one string, while ragkit tokenizes the instruction and the text apart
(and llm2vec's format caps words and wraps chat turns); a string join changes the tokens where the
instruction ends in a space. The model runs bidirectionally through its config (`is_causal: false`).

It needs sentence-transformers 5.7 or 6.x (both tested) and transformers >= 5.2.
"""

from __future__ import annotations

from typing import Any

import torch
from sentence_transformers.base.modules.transformer import Transformer

try:  # in an exported directory: the copy next to this file
    from .ragkit_formatting import TextFormatter
except ImportError:  # inside ragkit itself
    from ragkit.encoders.formatting import TextFormatter


class RagkitTransformer(Transformer):
    """`Transformer`, with ragkit's input format and a pooling mask that leaves the prompt out.

    `ragkit_format` (saved in sentence_bert_config.json): template, instruction_join,
    doc_max_length, append_eos and max_length, as the encoder's ragkit_config.json has them.
    The module hands the Pooling module an `attention_mask` of the text's own tokens, so a plain
    mean (or last-token) Pooling pools what ragkit pools.
    """

    config_keys: list[str] = [*Transformer.config_keys, "ragkit_format"]  # noqa: RUF012 (as in the parent)

    def __init__(self, model_name_or_path: str, *, ragkit_format: dict | None = None, **kwargs: Any) -> None:
        super().__init__(model_name_or_path, **kwargs)
        self.ragkit_format = dict(ragkit_format or {})
        settings = {k: v for k, v in self.ragkit_format.items() if k != "max_length"}
        self.formatter = TextFormatter(self.tokenizer, **settings)
        self.max_seq_length = self.ragkit_format.get("max_length", 512)

    def preprocess(
        self, inputs, prompt: str | None = None, processing_kwargs=None, **kwargs
    ) -> dict[str, Any]:
        """Texts tokenized in the encoder's input format, with how many leading tokens are not pooled."""
        if not inputs:
            return {}
        if not all(isinstance(text, str) for text in inputs):
            raise ValueError("this model embeds text only: pass strings")
        ids, prompt_lengths = self.formatter(list(inputs), prompt or None, self.max_seq_length)
        batch = self.formatter.tokenizer.pad({"input_ids": ids}, padding=True, return_tensors="pt")
        return {
            "input_ids": batch["input_ids"],
            "attention_mask": batch["attention_mask"],
            "prompt_lengths": torch.tensor(prompt_lengths, dtype=torch.long),
            "modality": "text",
        }

    def forward(self, features: dict[str, Any], **kwargs) -> dict[str, Any]:
        """Token states of the bidirectional model, and the mask that leaves the prompt out of pooling."""
        mask = features["attention_mask"]
        # Positions count real tokens only, so left padding does not shift the rotary positions.
        position_ids = (mask.long().cumsum(-1) - 1).clamp(min=0)
        output = self.model(
            input_ids=features["input_ids"], attention_mask=mask, position_ids=position_ids, use_cache=False
        )
        features["token_embeddings"] = output.last_hidden_state
        features["attention_mask"] = pooled_mask(mask, features.pop("prompt_lengths"))
        return features


def pooled_mask(attention_mask: torch.Tensor, prompt_lengths: torch.Tensor) -> torch.Tensor:
    """Real tokens at or after each row's prompt length (all real tokens where none is left):
    ragkit/encoders/pooling.py's `pooled_mask`, as the 0/1 integers Pooling expects."""
    real = attention_mask.bool()
    rank = attention_mask.long().cumsum(-1) - 1
    mask = real & (rank >= prompt_lengths.to(rank.device)[:, None])
    return torch.where(~mask.any(-1, keepdim=True), real, mask).to(attention_mask.dtype)
