"""The one table of LLM2Vec stages (name -> config, stage class, needs the LM head), the configs a run
gets from names, preset, TOML file and flags, and `training_stage`, which sets a stage up on a model
exactly as `adapt` does: the pipeline, the speed benchmark and the tests all use it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragkit.adapt.config import (
    PRESETS,
    DistillConfig,
    MNTPConfig,
    SimCSEConfig,
    StageConfig,
    SupervisedConfig,
    SyntheticConfig,
    check_type,
    read_toml,
)
from ragkit.adapt.distill import DistillStage, prepare_distill
from ragkit.adapt.distributed import World
from ragkit.adapt.losses.simcse import set_attention_dropout
from ragkit.adapt.stages import MNTPStage, SimCSEStage, SupervisedStage, SyntheticStage
from ragkit.adapt.synthetic import prepare_synthetic
from ragkit.adapt.trainer import Stage
from ragkit.adapt.tuning import trainable
from ragkit.encoders.encoder import Encoder, EncoderConfig, set_input_format
from ragkit.errors import RagkitError

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel


@dataclass(frozen=True)
class StageType:
    """What one stage name stands for: its config class, how to build it, and what it needs."""

    config: type[StageConfig]
    stage: Callable[..., Stage]  # (encoder, config, world, lm_head) -> Stage
    needs_lm_head: bool = False
    # Writes the stage's training data before it trains (synthetic queries): (encoder, config,
    # stage_dir, show_progress) -> the config to train with.
    prepare: Callable[..., StageConfig] | None = None


def synthetic_stage(encoder: Encoder, config: StageConfig, world: World, lm_head=None) -> Stage:
    """The synthetic stage: supervised contrastive on its pairs, or, where `prepare_synthetic` gave
    the distill stage's config (a teacher labels the candidates, GPL), the distill stage on them."""
    if isinstance(config, DistillConfig):
        stage = DistillStage(encoder, config, world)
        stage.name = "synthetic"
        return stage
    if not isinstance(config, SupervisedConfig):
        raise TypeError(f"the synthetic stage trains with a SupervisedConfig, got {type(config).__name__}")
    return SyntheticStage(encoder, config, world, lm_head)


# The only order stages may run in is this table's: corpus adaptation (synthetic) comes last.
STAGE_TYPES: dict[str, StageType] = {
    "mntp": StageType(MNTPConfig, MNTPStage, needs_lm_head=True),
    "simcse": StageType(SimCSEConfig, SimCSEStage),
    "supervised": StageType(SupervisedConfig, SupervisedStage),
    "distill": StageType(DistillConfig, DistillStage, prepare=prepare_distill),
    "synthetic": StageType(SyntheticConfig, synthetic_stage, prepare=prepare_synthetic),
}


def decoder_of(lm: PreTrainedModel) -> PreTrainedModel:
    """The transformer an encoder keeps: `lm` itself, or the decoder inside a causal LM."""
    return lm.get_decoder() if lm.get_output_embeddings() is not None else lm


@contextlib.contextmanager
def training_stage(
    name: str,
    lm: PreTrainedModel,
    tokenizer,
    config: StageConfig,
    world: World,
    *,
    allow_unvalidated: bool = False,
) -> Iterator[tuple[Stage, torch.nn.Module]]:
    """Stage `name` ready to train on `lm` (a causal LM when the stage needs the LM head): yields the
    stage and the model whose trainable weights it trains (the LoRA-wrapped decoder, or with tuning
    "full" the decoder itself).

    The stage's encoder is a fresh one (bidirectional, the stage's max length), so nothing shared is
    mutated. While the block runs, the decoder has activation checkpointing if asked and SimCSE's
    attention dropout; on exit both are restored. The LoRA stays in place until the caller merges
    it (`tuning.finish`) or drops the model.
    """
    kind = STAGE_TYPES[name]
    decoder = decoder_of(lm)
    lm_head = lm.get_output_embeddings() if kind.needs_lm_head else None
    if kind.needs_lm_head and lm_head is None:
        raise RagkitError(f"{name} needs the model's LM head: load it with with_lm_head=True")
    with training_settings(decoder, config):
        encoder = Encoder(
            decoder, tokenizer, training_format(config, decoder.config), allow_unvalidated=allow_unvalidated
        )
        peft_model = trainable(decoder, config)
        encoder.model = peft_model  # type: ignore[assignment]  # a PeftModel passes calls to the decoder
        yield kind.stage(encoder, config, world, lm_head), peft_model


def training_format(config: StageConfig, model_config) -> EncoderConfig:
    """The input format a stage trains in: ragkit's, or for supervised training on llm2vec's inputs,
    the reference's (run_supervised.py): the instruction joined to the query as text, each text in
    the user turn of the chat bases llm2vec names (keyed, as llm2vec keys it, on the name the base
    weights were loaded under), and no word cap."""
    encoder_config = EncoderConfig(max_length=config.max_length)
    if config.inputs == "llm2vec" and isinstance(config, SupervisedConfig):
        name = getattr(model_config, "name_or_path", "")
        set_input_format(encoder_config, "llm2vec", None, name, model_config.model_type)
        encoder_config.doc_max_length = None  # the word cap is `encode`'s; training tokenizes directly
    return encoder_config


@contextlib.contextmanager
def training_settings(decoder: PreTrainedModel, config: StageConfig) -> Iterator[None]:
    """Activation checkpointing and SimCSE's attention dropout on `decoder` while a stage trains; the
    model's own settings come back afterwards (a saved encoder keeps its config's dropout)."""
    dropout = getattr(decoder.config, "attention_dropout", None)
    if config.gradient_checkpointing:
        set_activation_checkpointing(decoder, True)
    if isinstance(config, SimCSEConfig):
        set_attention_dropout(decoder, config.attention_dropout)
    try:
        yield
    finally:
        if isinstance(config, SimCSEConfig):
            set_attention_dropout(decoder, dropout or 0.0)
        if config.gradient_checkpointing:
            set_activation_checkpointing(decoder, False)


def set_activation_checkpointing(model, enabled: bool) -> None:
    """Recompute layer activations in backward (less memory, ~45% slower); transformers >= 5.x renamed
    gradient checkpointing to activation checkpointing, and the old name warns."""
    if hasattr(model, "activation_checkpointing_enable"):
        if enabled:
            model.activation_checkpointing_enable({"use_reentrant": False})
        else:
            model.activation_checkpointing_disable()
    elif enabled:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_disable()


STAGES: tuple[str, ...] = tuple(STAGE_TYPES)


def stage_configs(
    stages: list[str],
    preset: str = "paper",
    file: str | Path | None = None,
    data: dict[str, str | None] | None = None,
    settings: dict[str, dict[str, Any]] | None = None,
    **overrides: Any,
) -> dict[str, StageConfig]:
    """Defaults, then the preset, then the TOML file's [stage] tables, then `data` (stage -> source),
    `settings` (stage -> {name: value}) and `overrides` (every stage); None values are ignored."""
    check_stages(stages)
    if preset not in PRESETS:
        raise RagkitError(f"unknown preset {preset!r}: use one of {', '.join(PRESETS)}")
    from_file = read_toml(Path(file), STAGES) if file else {}
    configs = {}
    for stage in stages:
        cls = STAGE_TYPES[stage].config
        values = {**PRESETS[preset].get(stage, {}), **from_file.get(stage, {})}
        values.update({k: v for k, v in (settings or {}).get(stage, {}).items() if v is not None})
        values.update({k: v for k, v in overrides.items() if v is not None})
        if data and data.get(stage):
            values["data"] = data[stage]
        known = {f.name for f in dataclasses.fields(cls)}
        if unknown := sorted(set(values) - known):
            raise RagkitError(f"{stage}: unknown setting {unknown[0]!r}; known: {', '.join(sorted(known))}")
        hints = typing.get_type_hints(cls)
        for key, value in values.items():
            check_type(stage, key, value, hints[key])
        configs[stage] = cls(**values)
        configs[stage].check(stage)
    return configs


def check_stages(stages: list[str]) -> None:
    """Refuse unknown stage names and stages out of the recipe's order (mntp before simcse ...)."""
    if not stages:
        raise RagkitError(f"no stages given: use some of {','.join(STAGES)}, in that order")
    for stage in stages:
        if stage not in STAGES:
            raise RagkitError(f"unknown stage {stage!r}: use some of {','.join(STAGES)}, in that order")
    if len(set(stages)) != len(stages):
        raise RagkitError(f"stage listed twice in {','.join(stages)}")
    if [s for s in STAGES if s in stages] != stages:
        raise RagkitError(f"stages out of order: {','.join(stages)}; they run as {','.join(STAGES)}")
