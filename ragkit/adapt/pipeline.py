"""`adapt()`: run LLM2Vec stages in order on a decoder and save an encoder `Encoder.load` reads.

Work happens in `<out>.training/`: a plan (the settings), then per stage a checkpoint while it runs
and its LoRA adapter once it is done. A rerun with the same settings picks up where a killed one
stopped; `out` itself is only ever replaced whole, at the end.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ragkit.adapt.config import (
    MNTPConfig,
    SimCSEConfig,
    StageConfig,
    SupervisedConfig,
    check_stages,
    stage_configs,
)
from ragkit.adapt.distributed import World, barrier, init_world
from ragkit.adapt.lora import add_lora
from ragkit.adapt.stages import MNTPStage, SimCSEStage, SupervisedStage
from ragkit.adapt.trainer import StageResult, read_log, train, write_log
from ragkit.atomic import swap_into_place
from ragkit.device import resolve_device, resolve_dtype
from ragkit.encoders.encoder import Encoder, EncoderConfig
from ragkit.encoders.loading import load_model, load_tokenizer, resolve
from ragkit.encoders.simcse import set_attention_dropout
from ragkit.errors import RagkitError

PLAN_NAME = "plan.json"


@dataclass
class AdaptReport:
    out: Path
    stages: list[StageResult] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # stages an earlier run had finished


def adapt(
    model: str,
    out: str | os.PathLike,
    stages: Sequence[str] | dict[str, StageConfig] = ("mntp", "simcse"),
    *,
    preset: str = "paper",
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    attn_implementation: str | None = None,
    restart: bool = False,
    show_progress: bool = True,
    allow_unvalidated: bool = False,
) -> AdaptReport:
    """Train `model` through `stages` (names, or name -> config) and save the encoder to `out`."""
    configs = dict(stages) if isinstance(stages, dict) else stage_configs(list(stages), preset)
    check_stages(list(configs))
    for name, config in configs.items():
        config.check(name)
    out = Path(out).expanduser().resolve()
    device = resolve_device(device)
    dtype = resolve_dtype(dtype, device)
    world = init_world(device)
    if device.type == "cuda" and world.size > 1:
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    workdir = out.with_name(f"{out.name}.training")
    plan = {"model": model, "stages": {name: dataclasses.asdict(c) for name, c in configs.items()}}
    if not restart:
        _check_resumable(workdir, plan)  # on every rank, so that all of them stop together
    if world.main:
        _start_or_resume(workdir, plan, restart)
    barrier(world)
    try:
        return _run(
            model,
            out,
            configs,
            workdir,
            world,
            device,
            dtype,
            attn_implementation,
            show_progress,
            allow_unvalidated,
        )
    except RagkitError:
        if world.main and not _has_progress(workdir):
            shutil.rmtree(workdir, ignore_errors=True)  # bad input found before any training: leave nothing
        raise


def _run(
    model, out, configs, workdir, world, device, dtype, attn_implementation, show_progress, allow_unvalidated
) -> AdaptReport:
    stage_dirs = {name: workdir / f"{i + 1}-{name}" for i, name in enumerate(configs)}
    done = [name for name in configs if (stage_dirs[name] / "adapter").is_dir()]
    report = AdaptReport(out, skipped=done)
    pending = [name for name in configs if name not in done]
    adapters = tuple(str(stage_dirs[name] / "adapter") for name in done)
    with_head = bool(pending) and pending[0] == "mntp"
    lm, source = load_model(
        model, adapters=adapters, dtype=dtype, with_lm_head=with_head, attn_implementation=attn_implementation
    )
    lm = lm.to(device)
    decoder = lm.get_decoder() if with_head else lm
    tokenizer = load_tokenizer(resolve(model), source)
    encoder = Encoder(
        decoder, tokenizer, EncoderConfig(source=str(model)), allow_unvalidated=allow_unvalidated
    )

    for name in pending:
        config = configs[name]
        stage_dir = stage_dirs[name]
        stage_dir.mkdir(parents=True, exist_ok=True)
        encoder.config.max_length = config.max_length
        if config.gradient_checkpointing:
            set_activation_checkpointing(decoder, True)
        dropout = decoder.config.attention_dropout if hasattr(decoder.config, "attention_dropout") else 0.0
        if isinstance(config, SimCSEConfig):
            set_attention_dropout(decoder, config.attention_dropout)
        peft_model = add_lora(decoder, config.lora_r, config.lora_alpha, config.lora_dropout, config.seed)
        encoder.model = peft_model
        stage = _build_stage(name, encoder, lm, config, world)
        report.stages.append(train(stage, peft_model, config, stage_dir, world, show_progress))
        if world.main:
            _save_adapter(peft_model, stage_dir / "adapter")
        barrier(world)
        decoder = peft_model.merge_and_unload()
        if isinstance(config, SimCSEConfig):
            set_attention_dropout(decoder, dropout)  # the saved config keeps the model's own value
        if config.gradient_checkpointing:
            set_activation_checkpointing(decoder, False)
        encoder.model = decoder
        (stage_dir / "checkpoint.pt").unlink(missing_ok=True)

    if world.main:
        encoder.model = decoder.eval()
        encoder.config = EncoderConfig(source=str(model))
        _finish(encoder, workdir, configs, stage_dirs, out)
    barrier(world)
    return report


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


def _build_stage(name: str, encoder: Encoder, lm, config: StageConfig, world: World):
    if isinstance(config, MNTPConfig):
        return MNTPStage(encoder, lm.get_output_embeddings(), config, world)
    if isinstance(config, SimCSEConfig):
        return SimCSEStage(encoder, config, world)
    if isinstance(config, SupervisedConfig):
        return SupervisedStage(encoder, config, world)
    raise RagkitError(f"unknown stage {name!r}")


def _check_resumable(workdir: Path, plan: dict) -> None:
    path = workdir / PLAN_NAME
    if path.is_file() and _has_progress(workdir):
        previous = json.loads(path.read_text())
        if previous != json.loads(json.dumps(plan)):
            what = _first_difference(previous, plan)
            raise RagkitError(
                f"{workdir} holds an unfinished run with other settings ({what}); rerun with the "
                "same settings to resume it, or add --restart to discard it"
            )


def _start_or_resume(workdir: Path, plan: dict, restart: bool) -> None:
    """Write the plan of a new run; a run with progress and the same plan is left to resume."""
    path = workdir / PLAN_NAME
    if restart:
        shutil.rmtree(workdir, ignore_errors=True)
    if path.is_file() and _has_progress(workdir):
        return
    workdir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{PLAN_NAME}.tmp")
    tmp.write_text(json.dumps(plan, indent=2) + "\n")
    os.replace(tmp, path)


def _has_progress(workdir: Path) -> bool:
    """A checkpoint or a finished stage: something a rerun would resume from."""
    return any(workdir.glob("*/checkpoint.pt")) or any(workdir.glob("*/adapter"))


def _first_difference(old: dict, new: dict) -> str:
    if old.get("model") != new.get("model"):
        return f"model {old.get('model')!r} vs {new.get('model')!r}"
    old_stages, new_stages = old.get("stages", {}), new.get("stages", {})
    if list(old_stages) != list(new_stages):
        return f"stages {','.join(old_stages)} vs {','.join(new_stages)}"
    for stage, values in new_stages.items():
        for key, value in values.items():
            if old_stages[stage].get(key) != value:
                return f"{stage}.{key} {old_stages[stage].get(key)!r} vs {value!r}"
    return "settings differ"


def _save_adapter(peft_model, path: Path) -> None:
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    peft_model.save_pretrained(tmp)
    swap_into_place(tmp, path)


def _finish(encoder: Encoder, workdir: Path, configs: dict, stage_dirs: dict[str, Path], out: Path) -> None:
    """Save the encoder with its adapters, plan, log and loss curve, then swap it into `out`."""
    from ragkit.adapt.plot import plot_losses

    final = encoder.save(workdir / "final")
    training = final / "training"
    training.mkdir()
    shutil.copy(workdir / PLAN_NAME, training / PLAN_NAME)
    rows: list[dict] = []
    for stage_dir in stage_dirs.values():
        shutil.copytree(stage_dir / "adapter", training / "adapters" / stage_dir.name)
        rows.extend(read_log(stage_dir / "log.csv"))
    if rows:
        write_log(training / "log.csv", rows)
        plot_losses(rows, training / "loss.png", f"{encoder.config.source}: {' -> '.join(configs)}")
    swap_into_place(final, out)
    shutil.rmtree(workdir, ignore_errors=True)
