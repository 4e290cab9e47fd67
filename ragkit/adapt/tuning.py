"""What a stage trains, behind one interface: LoRA adapters (peft), or with `tuning = "full"` the
decoder's own weights. The loop, checkpoints and snapshots ask these functions, never which it is.

Full fine-tuning keeps the decoder itself as the trained model: the weights of its top `layers` layers
and the final norm above them (with every layer, the embeddings too) get gradients, the rest stay
frozen. Its stage output is those tensors alone (`TRAINED_WEIGHTS`), which `load_model` puts back
where a LoRA adapter would be merged.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ragkit.adapt.config import StageConfig
from ragkit.adapt.lora import adapter_state, add_lora, load_adapter_state
from ragkit.encoders.loading import TRAINED_WEIGHTS, put_weights
from ragkit.errors import RagkitError
from ragkit.io import atomic_path

if TYPE_CHECKING:
    from transformers import PreTrainedModel


def trainable(decoder: PreTrainedModel, config: StageConfig) -> torch.nn.Module:
    """The model a stage trains: `decoder` wrapped in a fresh LoRA, or (tuning "full") `decoder`
    itself with only the weights it trains left requiring gradients."""
    if config.tuning == "lora":
        return add_lora(
            decoder, config.lora_r, config.lora_alpha, config.lora_dropout, config.seed, config.lora_layers
        )
    total = decoder.config.num_hidden_layers
    layers = total if config.lora_layers is None else config.lora_layers
    if not 1 <= layers <= total:
        raise RagkitError(f"lora_layers must be between 1 and the model's {total} layers, got {layers}")
    embeddings = {id(p) for p in decoder.get_input_embeddings().parameters()}
    for name, param in decoder.named_parameters():
        index = re.search(r"(?:^|\.)layers\.(\d+)\.", name)
        if index:
            param.requires_grad_(int(index.group(1)) >= total - layers)
        else:  # the embeddings lie below every layer; the final norm above them all
            param.requires_grad_(layers == total or id(param) not in embeddings)
    return decoder


def is_lora(model: torch.nn.Module) -> bool:
    """A LoRA-wrapped (peft) model, told by its merge method as `Encoder.write_weights` tells it."""
    return hasattr(model, "merge_and_unload")


def trained_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A CPU copy of the weights the stage trains (LoRA's, or the tuned weights): what a checkpoint keeps."""
    if is_lora(model):
        return adapter_state(model)
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def load_trained_state(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Put checkpointed trained weights back; a checkpoint of other weights is an error."""
    if is_lora(model):
        load_adapter_state(model, state)
        return
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    if set(state) != trained:
        raise RagkitError("the checkpoint does not match the weights this stage trains; rerun with `restart`")
    put_weights(model, state, "the checkpoint")


def save_trained(model: torch.nn.Module, path: Path) -> None:
    """The stage's output as it is now: a PEFT adapter folder, or the tuned weights in `TRAINED_WEIGHTS`;
    either is what `load_model(..., adapters=[path])` applies."""
    with atomic_path(path) as tmp:
        if is_lora(model):
            model.save_pretrained(tmp)  # type: ignore[operator]  # a PeftModel; nn.Module's typing knows no methods
        else:
            from safetensors.torch import save_file

            tmp.mkdir()
            save_file(
                {n: t.contiguous() for n, t in trained_state(model).items()}, str(tmp / TRAINED_WEIGHTS)
            )


def finish(model: torch.nn.Module) -> torch.nn.Module:
    """After the stage: LoRA merged into the decoder (in place), or the tuned weights frozen again; the
    decoder the next stage starts from."""
    if is_lora(model):
        return model.merge_and_unload()  # type: ignore[operator]  # a PeftModel
    model.requires_grad_(False)
    return model
