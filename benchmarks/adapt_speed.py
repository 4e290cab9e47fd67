"""Training throughput and peak memory of each LLM2Vec stage, side by side in one run.

    python benchmarks/adapt_speed.py [--model smollm2-135m] [--steps 4] [--device cpu|cuda]

Each configuration runs in its own process (so peak memory is its own): one warm-up step, then
`--steps` timed optimizer steps on real text (../shared/data/text, else the pydoc topics). Rows
that differ only in micro-batching (GradCache) or gradient checkpointing show what those cost; the
bf16 autocast rows show what mixed precision gains, and their losses (same seed, same batches) show
whether it trains the same.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

# name, stage, settings (batch sizes are per optimizer step)
CPU_RUNS = [
    ("mntp", "mntp", dict(batch_size=8, max_length=128)),
    ("mntp + grad checkpointing", "mntp", dict(batch_size=8, max_length=128, gradient_checkpointing=True)),
    ("mntp, bf16 autocast", "mntp", dict(batch_size=8, max_length=128, autocast="bf16")),
    ("simcse", "simcse", dict(batch_size=32, max_length=64)),
    ("simcse, bf16 autocast", "simcse", dict(batch_size=32, max_length=64, autocast="bf16")),
    ("supervised", "supervised", dict(batch_size=16, max_length=128, gradient_checkpointing=False)),
    (
        "supervised, bf16 autocast",
        "supervised",
        dict(batch_size=16, max_length=128, gradient_checkpointing=False, autocast="bf16"),
    ),
    (
        "supervised, bf16, LoRA on the top 15 of 30 layers",
        "supervised",
        dict(batch_size=16, max_length=128, gradient_checkpointing=False, autocast="bf16", lora_layers=15),
    ),
    (
        "supervised, bf16, LoRA on the top 8 of 30 layers",
        "supervised",
        dict(batch_size=16, max_length=128, gradient_checkpointing=False, autocast="bf16", lora_layers=8),
    ),
    # Capacity (release 0.6's pilots): the same 15 layers as LoRA or as weights, and every weight.
    (
        "supervised, LoRA on the top 15 of 30 layers",
        "supervised",
        dict(batch_size=16, max_length=128, gradient_checkpointing=False, lora_layers=15),
    ),
    (
        "supervised, full fine-tuning of the top 15 of 30 layers",
        "supervised",
        dict(batch_size=16, max_length=128, gradient_checkpointing=False, lora_layers=15, tuning="full"),
    ),
    (
        "supervised, full fine-tuning of every weight",
        "supervised",
        dict(batch_size=16, max_length=128, gradient_checkpointing=False, tuning="full"),
    ),
    (
        "supervised + GradCache (chunks of 4)",
        "supervised",
        dict(batch_size=16, micro_batch_size=4, max_length=128, gradient_checkpointing=False),
    ),
]
GPU_RUNS = [
    ("mntp (paper: 32 x 512)", "mntp", dict(batch_size=32, max_length=512)),
    ("simcse (paper: 128 x 128)", "simcse", dict(batch_size=128, max_length=128)),
    ("supervised 64, no GradCache", "supervised", dict(batch_size=64, micro_batch_size=64, max_length=512)),
    (
        "supervised 512, GradCache 64 (paper)",
        "supervised",
        dict(batch_size=512, micro_batch_size=64, max_length=512),
    ),
]


def data_for(stage: str) -> str:
    if stage == "supervised":
        snli = DATA / "nli" / "snli_1.0_subset" / "snli_1.0_dev.subset.jsonl"
        return str(snli) if snli.is_file() else "pydoc"
    text = (
        DATA
        / "text"
        / ("wikitext-2-raw.wiki.test.raw" if stage == "mntp" else "wiki1m_for_simcse.head11913.txt")
    )
    return str(text) if text.is_file() else "pydoc"


def run_one(model: str, stage: str, settings: dict, steps: int, device: str) -> dict:
    """Runs in a child process: build the stage as `adapt` does, time `steps` steps after a warm-up."""
    import torch

    from ragkit.adapt import STAGE_TYPES, training_stage
    from ragkit.adapt.distributed import World
    from ragkit.adapt.trainer import autocast
    from ragkit.encoders.loading import load_model, load_tokenizer, resolve

    config = STAGE_TYPES[stage].config(**settings, steps=steps + 1, data=data_for(stage))
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    lm, _ = load_model(model, dtype=dtype, with_lm_head=STAGE_TYPES[stage].needs_lm_head)
    lm = lm.to(device)
    with training_stage(stage, lm, load_tokenizer(resolve(model)), config, World()) as (built, peft_model):
        params = [p for p in peft_model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=config.lr)
        peft_model.train()
        losses = []

        def step(i: int) -> int:
            torch.manual_seed(i)
            optimizer.zero_grad()
            with autocast(config, torch.device(device)):
                loss, tokens = built.step(i)
            optimizer.step()
            losses.append(loss)
            return tokens

        step(0)  # warm-up
        _reset_peak(device)
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        tokens = sum(step(i) for i in range(1, steps + 1))
        if device == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    return {
        "tokens_per_s": tokens / seconds,
        "s_per_step": seconds / steps,
        "peak_gib": _peak_gib(device),
        "losses": [round(x, 4) for x in losses],
    }


def _reset_peak(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.reset_peak_memory_stats()
    else:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM, the peak resident set


def _peak_gib(device: str) -> float:
    if device == "cuda":
        import torch

        return torch.cuda.max_memory_allocated() / 2**30
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 2**20
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--device", default=None)
    parser.add_argument("--only", help="run only the configurations whose name contains this")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:  # one configuration, in a fresh process
        job = json.loads(args.child)
        print(json.dumps(run_one(args.model, job["stage"], job["settings"], args.steps, job["device"])))
        return

    import torch
    from rich.console import Console
    from rich.table import Table

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    runs = GPU_RUNS if device == "cuda" else CPU_RUNS
    name = torch.cuda.get_device_name(0) if device == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    table = Table(title=f"adapt speed: {args.model}, {name}, {args.steps} timed steps after 1 warm-up")
    for column in ("configuration", "settings", "tokens/s", "s/step", "peak memory GiB", "losses"):
        table.add_column(column, justify="left" if column in ("configuration", "settings") else "right")
    for label, stage, settings in runs:
        if args.only and args.only not in label:
            continue
        job = json.dumps({"stage": stage, "settings": settings, "device": device})
        child = subprocess.run(
            [sys.executable, __file__, "--model", args.model, "--steps", str(args.steps), "--child", job],
            capture_output=True,
            text=True,
        )
        if child.returncode != 0:
            raise SystemExit(f"{label} failed:\n{child.stderr[-2000:]}")
        r = json.loads(child.stdout.strip().splitlines()[-1])
        shown = ", ".join(f"{k}={v}" for k, v in settings.items())
        table.add_row(
            label,
            shown,
            f"{r['tokens_per_s']:,.0f}",
            f"{r['s_per_step']:.2f}",
            f"{r['peak_gib']:.2f}",
            " ".join(f"{x:.3f}" for x in r["losses"]),
        )
        print(f"{label}: {r}", file=sys.stderr)
    Console().print(table)


if __name__ == "__main__":
    main()
