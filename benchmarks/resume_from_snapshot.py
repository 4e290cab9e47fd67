"""Rebuild a lost training checkpoint from an adapter the run kept: the run goes on from its step.

    ragkit adapt ... --out runs/smollm2-distill         # start the run again; stop it after its
                                                        # first checkpoint (checkpoint_every steps)
    python benchmarks/resume_from_snapshot.py runs/smollm2-distill.training/1-distill \
        ragkit/models/llm2vec-smollm2-135m/adapters/4-distill --step 200
    ragkit adapt ... --out runs/smollm2-distill         # resumes at step 201

A checkpoint holds the LoRA weights, AdamW's moments and the schedule; a snapshot (or a packaged
adapter, in fp16) holds the weights alone. The new checkpoint takes the weights from the adapter, the
schedule at `--step`, and the optimizer's layout from the stage's own fresh checkpoint with its
moments cleared: AdamW starts them again, so the steps after the restart are not the ones the lost
run would have taken. The log keeps no rows before the restart (the lost run's are lost with it).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from ragkit.adapt.trainer import linear_schedule
from ragkit.io.atomic import atomic_path


def rebuild(stage: Path, adapter: Path, step: int) -> None:
    checkpoint = stage / "checkpoint.pt"
    if not checkpoint.is_file():
        raise SystemExit(f"{checkpoint} is missing: run the stage until its first checkpoint, then stop it")
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    weights = {k: v.float() for k, v in load_file(adapter / "adapter_model.safetensors").items()}
    if weights.keys() != state["adapter"].keys():
        raise SystemExit(f"{adapter} is not an adapter of this run's LoRA layout")
    state["adapter"] = weights
    config = json.loads((stage.parent / "plan.json").read_text())["stages"][stage.name.split("-", 1)[1]]
    lr = config["lr"] * linear_schedule(config["warmup_steps"], config["steps"])(step)
    state["optimizer"]["state"] = {}  # AdamW's moments: not in a snapshot, started afresh
    for group in state["optimizer"]["param_groups"]:
        group["lr"] = lr  # what the schedule set after step `step`, used by the next one
    state["schedule"].update(last_epoch=step, _step_count=step + 1, _last_lr=[lr])
    state["step"] = step
    with atomic_path(checkpoint) as tmp:
        torch.save(state, tmp)
    (stage / "log.csv").unlink(missing_ok=True)
    print(f"{checkpoint}: step {step}, lr {lr:.3g}, weights from {adapter}, AdamW moments cleared")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", type=Path, help="the stage's folder under <out>.training/")
    parser.add_argument("adapter", type=Path, help="a snapshot or packaged adapter of this run")
    parser.add_argument("--step", type=int, required=True, help="the step the adapter was kept at")
    args = parser.parse_args()
    rebuild(args.stage, args.adapter, args.step)
