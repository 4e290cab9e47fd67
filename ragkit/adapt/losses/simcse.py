"""Step 3 of LLM2Vec: unsupervised SimCSE.

A sentence passed twice through the model in train mode gets two different dropout masks; the two
vectors are a positive pair and the other sentences of the batch are negatives (`info_nce`).
"""

from __future__ import annotations

from torch import nn

from ragkit.errors import RagkitError


def set_attention_dropout(model: nn.Module, p: float) -> None:
    """Dropout on the attention weights (LLM2Vec uses 0.3); active in train mode only, so `encode` is exact.

    The attention modules copy the config's value when they are built, so both are set.
    """
    if not 0 <= p < 1:
        raise RagkitError(f"attention dropout must be in [0, 1), got {p}")
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "attention_dropout"):
        config.attention_dropout = p
    touched = 0
    for module in model.modules():
        if isinstance(getattr(module, "attention_dropout", None), float):
            module.attention_dropout = p  # type: ignore[assignment]  # nn.Module types attributes as tensors
            touched += 1
    if touched == 0 and p > 0:
        raise RagkitError(f"{type(model).__name__} has no attention dropout to set; SimCSE needs one")
