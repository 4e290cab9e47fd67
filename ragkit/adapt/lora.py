"""LoRA adapters (peft) on every projection of a decoder, as in LLM2Vec."""

from __future__ import annotations

import re
import warnings
from typing import TYPE_CHECKING

import torch

from ragkit.errors import RagkitError

if TYPE_CHECKING:
    from transformers import PreTrainedModel

TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def add_lora(
    model: PreTrainedModel, r: int, alpha: int, dropout: float, seed: int, layers: int | None = None
):
    """`model` wrapped in a fresh LoRA (seeded, so a resumed run rebuilds the same one); base frozen.

    `layers`: adapt only the top `layers` decoder layers. Nothing below them needs a gradient, so
    backward stops there: a step costs the forward pass plus the top layers' backward.
    """
    from peft import LoraConfig, get_peft_model

    names = [name for name, _ in model.named_modules()]
    present = {name.rsplit(".", 1)[-1] for name in names}
    targets = [t for t in TARGET_MODULES if t in present]
    if not targets:
        raise RagkitError(
            f"{type(model).__name__} has none of the projections LoRA targets ({', '.join(TARGET_MODULES)})"
        )
    if layers is not None:
        total = model.config.num_hidden_layers
        if not 1 <= layers <= total:
            raise RagkitError(f"lora_layers must be between 1 and the model's {total} layers, got {layers}")
        # Full module names of the top layers' projections (peft matches them as suffixes).
        targets = [
            name
            for name in names
            if name.rsplit(".", 1)[-1] in targets
            and (index := re.search(r"(?:^|\.)(\d+)\.", name))
            and int(index.group(1)) >= total - layers
        ]
    torch.manual_seed(seed)
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets)
    with warnings.catch_warnings():  # peft calls a transformers property deprecated in 5.x
        warnings.simplefilter("ignore", FutureWarning)
        return get_peft_model(model, config)


def adapter_state(model) -> dict[str, torch.Tensor]:
    """A CPU copy of the LoRA weights only: what a checkpoint keeps."""
    from peft import get_peft_model_state_dict

    return {k: v.detach().cpu().clone() for k, v in get_peft_model_state_dict(model).items()}


def load_adapter_state(model, state: dict[str, torch.Tensor]) -> None:
    """Put checkpointed LoRA weights back; keys the model does not have are an error, not silently dropped."""
    from peft import set_peft_model_state_dict

    result = set_peft_model_state_dict(model, state)
    if getattr(result, "unexpected_keys", None):
        raise RagkitError("the checkpoint does not match this model's LoRA; rerun with `restart`")
