"""`adapt()`: run LLM2Vec stages in order on a decoder and save an encoder `Encoder.load` reads.

Work happens in `<out>.training/`: a plan (the settings), then per stage a checkpoint while it runs
and its LoRA adapter (or tuned weights) once it is done. A rerun with the same settings picks up
where a killed one stopped; `out` itself is only ever replaced whole, at the end.
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

from ragkit.adapt.config import StageConfig, SyntheticConfig
from ragkit.adapt.distributed import World, barrier, init_world
from ragkit.adapt.registry import STAGE_TYPES, check_stages, decoder_of, stage_configs, training_stage
from ragkit.adapt.trainer import SNAPSHOTS, StageResult, read_log, train, write_log
from ragkit.adapt.tuning import finish, save_trained
from ragkit.device import resolve_device, resolve_dtype
from ragkit.encoders.encoder import Encoder, EncoderConfig, saved_config, set_input_format
from ragkit.encoders.loading import adapter_digests, load_model, load_tokenizer, resolve
from ragkit.encoders.supervised import query_prompt
from ragkit.errors import RagkitError
from ragkit.io import atomic_write_text, swap_into_place

PLAN_NAME = "plan.json"


@dataclass
class AdaptReport:
    """What `adapt` did: where the encoder went, each stage trained now, and those an earlier run had
    finished."""

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
    plan = {
        "model": model,
        # A built-in encoder keeps its name across releases (and an LLM2Vec adapter folder its path):
        # the digests of the LoRA weights it merges say which weights the run started from.
        "model_adapters": adapter_digests(model, []),
        "stages": {name: dataclasses.asdict(c) for name, c in configs.items()},
    }
    if not restart:
        _check_resumable(workdir, plan)  # on every rank, so that all of them stop together
    if world.main:
        _start_or_resume(workdir, plan, restart)
    barrier(world)
    run = _Run(
        model, out, workdir, world, device, dtype, attn_implementation, show_progress, allow_unvalidated
    )
    try:
        return _run(run, configs)
    except RagkitError:
        if world.main and not _has_progress(workdir):
            shutil.rmtree(workdir, ignore_errors=True)  # bad input found before any training: leave nothing
        raise


@dataclass
class _Run:
    """What every stage of one `adapt` call shares."""

    model: str
    out: Path
    workdir: Path
    world: World
    device: torch.device
    dtype: torch.dtype
    attn_implementation: str | None
    show_progress: bool
    allow_unvalidated: bool


def _run(run: _Run, configs: dict[str, StageConfig]) -> AdaptReport:
    stage_dirs = {name: run.workdir / f"{i + 1}-{name}" for i, name in enumerate(configs)}
    done = [name for name in configs if (stage_dirs[name] / "adapter").is_dir()]
    report = AdaptReport(run.out, skipped=done)
    pending = [name for name in configs if name not in done]
    lm, source = load_model(
        run.model,
        adapters=tuple(str(stage_dirs[name] / "adapter") for name in done),
        dtype=run.dtype,
        with_lm_head=bool(pending) and STAGE_TYPES[pending[0]].needs_lm_head,
        attn_implementation=run.attn_implementation,
    )
    lm = lm.to(run.device)  # type: ignore[arg-type]  # transformers types `to` as its dtype-checking wrapper
    tokenizer = load_tokenizer(resolve(run.model), source)

    for name in pending:
        config, stage_dir = configs[name], stage_dirs[name]
        stage_dir.mkdir(parents=True, exist_ok=True)
        if prepare := STAGE_TYPES[name].prepare:
            if run.world.main:
                prepare(_encoder(lm, tokenizer, config, run), config, stage_dir, run.show_progress)
            barrier(run.world)
            config = prepare(_encoder(lm, tokenizer, config, run), config, stage_dir, False)  # reads it
        with training_stage(
            name, lm, tokenizer, config, run.world, allow_unvalidated=run.allow_unvalidated
        ) as (stage, peft_model):
            report.stages.append(train(stage, peft_model, config, stage_dir, run.world, run.show_progress))
            if run.world.main:
                save_trained(peft_model, stage_dir / "adapter")
            barrier(run.world)
            finish(peft_model)  # merged into the decoder, in place: the next stage starts from it
        (stage_dir / "checkpoint.pt").unlink(missing_ok=True)

    if run.world.main:
        decoder = decoder_of(lm).eval()
        encoder_config = _encoder_config(run.model, configs, decoder.config)
        encoder = Encoder(decoder, tokenizer, encoder_config, allow_unvalidated=run.allow_unvalidated)
        _finish(encoder, run.workdir, configs, stage_dirs, run.out)
    barrier(run.world)
    return report


def _encoder(lm, tokenizer, config: StageConfig, run: _Run) -> Encoder:
    """The model as trained so far, as an encoder (what a stage that mines with it sees)."""
    decoder = decoder_of(lm).eval()
    return Encoder(
        decoder,
        tokenizer,
        EncoderConfig(max_length=config.max_length),
        allow_unvalidated=run.allow_unvalidated,
    )


def _encoder_config(model: str, configs: dict[str, StageConfig], model_config) -> EncoderConfig:
    """The saved encoder's settings: those of the encoder it was adapted from (a built-in or saved
    ragkit encoder: instructions, pooling, input format), with the synthetic stage's query instruction.
    Trained on llm2vec's inputs, it reads texts as llm2vec's published checkpoints do (its input format)."""
    config = dataclasses.replace(saved_config(model) or EncoderConfig(), source=str(model), adapters=[])
    if any(c.inputs == "llm2vec" for c in configs.values()):
        name = getattr(model_config, "name_or_path", "")
        set_input_format(config, "llm2vec", None, name, model_config.model_type)
    if isinstance(synthetic := configs.get("synthetic"), SyntheticConfig) and synthetic.instruction:
        config.query_instruction = query_prompt(synthetic.instruction, synthetic.instruction_separator)
    return config


def _check_resumable(workdir: Path, plan: dict) -> None:
    path = workdir / PLAN_NAME
    if path.is_file() and _has_progress(workdir):
        previous = json.loads(path.read_text())
        previous.setdefault("model_adapters", plan["model_adapters"])  # plans written before it was kept
        for name, values in previous.get("stages", {}).items():  # settings added since, at their defaults
            if name in STAGE_TYPES:
                for f in dataclasses.fields(STAGE_TYPES[name].config):
                    if f.default is not dataclasses.MISSING:
                        values.setdefault(f.name, f.default)
        if previous["model"] == plan["model"] and previous["model_adapters"] != plan["model_adapters"]:
            raise RagkitError(
                f"{workdir} holds an unfinished run that started from other weights under the name "
                f"{plan['model']!r} (its adapters {','.join(previous['model_adapters']) or 'none'}, now "
                f"{','.join(plan['model_adapters']) or 'none'}): resume it with the model it started "
                "from, or add `restart` to discard it"
            )
        if previous != json.loads(json.dumps(plan)):
            what = _first_difference(previous, plan)
            raise RagkitError(
                f"{workdir} holds an unfinished run with other settings ({what}); rerun with the "
                "same settings to resume it, or add `restart` to discard it"
            )


def _start_or_resume(workdir: Path, plan: dict, restart: bool) -> None:
    """Write the plan of a new run; a run with progress and the same plan is left to resume."""
    path = workdir / PLAN_NAME
    if restart:
        shutil.rmtree(workdir, ignore_errors=True)
    if path.is_file() and _has_progress(workdir):
        return
    workdir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(plan, indent=2) + "\n")


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
        if (stage_dir / SNAPSHOTS).is_dir():
            shutil.copytree(stage_dir / SNAPSHOTS, training / SNAPSHOTS / stage_dir.name)
        for data in ("pairs.jsonl", "pairs.json"):  # what a synthetic stage wrote and trained on
            if (stage_dir / data).is_file():
                shutil.copy(stage_dir / data, training / f"{stage_dir.name}-{data}")
        rows.extend(read_log(stage_dir / "log.csv"))
    if rows:
        write_log(training / "log.csv", rows)
        plot_losses(rows, training / "loss.png", f"{encoder.config.source}: {' -> '.join(configs)}")
    swap_into_place(final, out)
    shutil.rmtree(workdir, ignore_errors=True)
