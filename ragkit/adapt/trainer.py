"""The optimisation loop shared by every stage: AdamW, linear warmup and decay, gradient clipping,
checkpoints that make a killed run resumable, a CSV log and a progress bar.
"""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TextIO

import torch

from ragkit.adapt.config import StageConfig
from ragkit.adapt.distributed import World, average_gradients, barrier, mean, step_seed
from ragkit.adapt.tuning import load_trained_state, save_trained, trained_state
from ragkit.encoders.precision import native_bf16
from ragkit.io import atomic_path
from ragkit.progress import progress_bar

SNAPSHOTS = "snapshots"  # in a stage's folder: the adapters (or tuned weights) `snapshot_every` keeps
LOG_FIELDS = ("stage", "step", "loss", "lr", "tokens_per_s", "elapsed_s")


class Stage(Protocol):
    """A training stage as the loop sees it: a name, a step and its data's length in steps."""

    name: str
    epoch_steps: int  # optimizer steps in one pass over its data: sizes a schedule over `decay_epochs`

    def step(self, step: int) -> tuple[float, int]:
        """The loss of step `step` and its gradients (not the optimizer step): (loss, tokens)."""


@dataclass
class StageResult:
    """One trained stage, as `ragkit adapt` summarises it."""

    stage: str
    steps: int
    resumed_from: int
    first_loss: float  # mean of the first 10 logged steps
    last_loss: float  # mean of the last 10
    seconds: float
    tokens_per_s: float


def train(
    stage: Stage,
    model: torch.nn.Module,
    config: StageConfig,
    workdir: Path,
    world: World,
    show_progress: bool,
) -> StageResult:
    """Run `config.steps` optimizer steps on the trainable weights of `model` (LoRA's, or the tuned
    ones), resuming from `workdir/checkpoint.pt` if an earlier run of the same stage left one."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, linear_schedule(config.warmup_steps, decay_steps(stage, config))
    )
    checkpoint, log_path = workdir / "checkpoint.pt", workdir / "log.csv"
    start = _resume(checkpoint, model, optimizer, schedule)
    rows = read_log(log_path, upto=start) if world.main else []
    if world.main:
        write_log(log_path, rows)

    model.train()
    began = time.perf_counter()
    tokens_seen = 0
    bar = progress_bar(
        stage.name,
        "loss {task.fields[loss]}  lr {task.fields[lr]}  {task.fields[speed]} tok/s",
        enabled=show_progress and world.main,
    )
    with bar, _Appender(log_path if world.main else None) as log:
        task = bar.add_task(stage.name, total=config.steps, completed=start, loss="-", lr="-", speed="-")
        for step in range(start, config.steps):
            # Dropout draws depend on the step alone, so a resumed run repeats the same noise.
            torch.manual_seed(step_seed(config.seed, step, world))
            optimizer.zero_grad(set_to_none=True)
            t0 = time.perf_counter()
            with autocast(config, params[0].device):
                loss, tokens = stage.step(step)
            average_gradients(params, world)
            torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
            optimizer.step()
            lr = schedule.get_last_lr()[0]
            schedule.step()
            loss = mean(loss, world)
            tokens_seen += tokens * world.size
            row = {
                "stage": stage.name,
                "step": step + 1,
                "loss": round(loss, 6),
                "lr": lr,
                "tokens_per_s": round(tokens * world.size / (time.perf_counter() - t0), 1),
                "elapsed_s": round(time.perf_counter() - began, 2),
            }
            rows.append(row)
            log(row)
            bar.update(
                task,
                completed=step + 1,
                loss=f"{loss:.4f}",
                lr=f"{lr:.1e}",
                speed=f"{row['tokens_per_s']:,.0f}",
            )
            _keep(step + 1, config, model, workdir, (optimizer, schedule), world)
    model.eval()
    seconds = time.perf_counter() - began
    losses = [float(r["loss"]) for r in rows]
    first, last = losses[:10], losses[-10:]
    return StageResult(
        stage.name,
        config.steps,
        start,
        first_loss=sum(first) / max(1, len(first)),
        last_loss=sum(last) / max(1, len(last)),
        seconds=seconds,
        tokens_per_s=tokens_seen / seconds if seconds > 0 else 0.0,
    )


def _keep(done: int, config: StageConfig, model, workdir: Path, optimizers: tuple, world: World) -> None:
    """After step `done`: the adapter as a snapshot every `snapshot_every` steps, and a checkpoint
    (adapter, optimizer, schedule) every `checkpoint_every`."""
    if config.snapshot_every and done % config.snapshot_every == 0 and world.main:
        save_trained(model, workdir / SNAPSHOTS / f"step-{done:06d}")
    if done % config.checkpoint_every == 0 and done < config.steps:
        if world.main:
            optimizer, schedule = optimizers
            _save_checkpoint(workdir / "checkpoint.pt", model, optimizer, schedule, done)
        barrier(world)


def _resume(checkpoint: Path, model: torch.nn.Module, optimizer, schedule) -> int:
    """The step to start from: 0, or the checkpoint's, with the LoRA weights, the optimizer and the
    schedule put back as they were."""
    if not checkpoint.is_file():
        return 0
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    load_trained_state(model, state["adapter"])
    optimizer.load_state_dict(state["optimizer"])
    schedule.load_state_dict(state["schedule"])
    return state["step"]


def autocast_dtype(config: StageConfig, device: torch.device) -> torch.dtype | None:
    """bf16 for autocast "bf16", and for "auto" where `device` computes bf16 in hardware; else None."""
    if config.autocast == "bf16" or (config.autocast == "auto" and native_bf16(device)):
        return torch.bfloat16
    return None


def autocast(config: StageConfig, device: torch.device):
    """Mixed precision for the forward passes; losses and LoRA weights stay fp32."""
    dtype = autocast_dtype(config, device)
    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)


def decay_steps(stage: Stage, config: StageConfig) -> int:
    """Where the linear decay reaches 0: `steps`, or `decay_epochs` passes over the stage's data (the
    HF Trainer's `num_train_epochs`: the reference trains 3 epochs' schedule and stops at `steps`)."""
    if config.decay_epochs is None:
        return config.steps
    return math.ceil(config.decay_epochs * stage.epoch_steps)


def linear_schedule(warmup: int, total: int) -> Callable[[int], float]:
    """The learning rate's factor after `step` steps, as the HF Trainer's linear schedule (the
    reference's): warmup from 0 to 1 over `warmup` steps, then linear decay to 0 at `total` (the
    schedule every stage trains with; a rebuilt checkpoint needs the same one)."""

    def factor(step: int) -> float:
        if step < warmup:
            return step / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    return factor


def _save_checkpoint(path: Path, model, optimizer, schedule, step: int) -> None:
    """One file, written to a temporary name and renamed: a kill mid-write keeps the previous one."""
    state = {
        "adapter": trained_state(model),  # LoRA's weights, or the fully tuned ones
        "optimizer": optimizer.state_dict(),
        "schedule": schedule.state_dict(),
        "step": step,
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def read_log(path: Path, upto: int | None = None) -> list[dict]:
    """The rows of a stage's CSV log, up to step `upto` (the checkpoint a run resumes from)."""
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return [r for r in csv.DictReader(f) if upto is None or int(r["step"]) <= upto]


def write_log(path: Path, rows: list[dict]) -> None:
    """Write the per-step log (loss, learning rate, tokens/s) as CSV."""
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, LOG_FIELDS)
        writer.writeheader()
        writer.writerows(rows)


class _Appender:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.file: TextIO | None = None

    def __enter__(self) -> Callable[[dict], None]:
        if self.path is None:
            return lambda row: None
        self.file = file = self.path.open("a", newline="")
        writer = csv.DictWriter(file, LOG_FIELDS)

        def append(row: dict) -> None:
            writer.writerow(row)
            file.flush()

        return append

    def __exit__(self, *exc) -> None:
        if self.file is not None:
            self.file.close()
