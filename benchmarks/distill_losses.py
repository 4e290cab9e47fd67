"""The distill stage's losses on the real student, before any pilot: seconds per step and how hard each
term pulls (the gradient norm it gives the LoRA weights), so `embedding_weight` is set by measurement.

    python benchmarks/distill_data.py runs/distill-data --dev runs/extra-dev
    python benchmarks/distill_losses.py            # release 0.5 of llm2vec-smollm2-135m, MiniLM teacher

One prepared stage (benchmarks/distill_data.py's pairs and texts, `queries` of them, the teacher's vectors
cached under --stage-dir) serves every loss: "kl" (release 0.5's), "embedding" (the cosine-matrix MSE over
queries, candidates and `texts_per_step` texts) and their sum. Each runs the same first steps from the
same weights (LoRA B starts at 0, so the first step's gradient reaches B only: the norms compare the
terms, not training). Writes benchmarks/results/distill_losses.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import time
from pathlib import Path

import torch

from ragkit.adapt.config import DistillConfig
from ragkit.adapt.distill import prepare_distill
from ragkit.adapt.distributed import World
from ragkit.adapt.registry import training_stage
from ragkit.encoders.encoder import Encoder

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="llm2vec-smollm2-135m")
    parser.add_argument("--teacher", default="all-minilm-l6-v2")
    parser.add_argument("--data", default="runs/distill-data/pairs")
    parser.add_argument("--texts", default="runs/distill-data/texts.jsonl")
    parser.add_argument("--stage-dir", type=Path, default=Path("runs/distill-losses"))
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--pairs-per-source", type=int, default=200, help="of each file of --data")
    args = parser.parse_args()
    sample = args.stage_dir.with_name(args.stage_dir.name + "-pairs")  # a small pool: the teacher embeds it
    sample.mkdir(parents=True, exist_ok=True)
    for path in sorted(Path(args.data).glob("*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            head = [line for _, line in zip(range(args.pairs_per_source), f, strict=False)]
        (sample / path.name.removesuffix(".gz")).write_text("".join(head))
    config = DistillConfig(
        data=str(sample),
        teacher=args.teacher,
        texts=args.texts,
        loss="kl+embedding",
        queries=256,
        max_texts=4096,
        batch_size=16,
        micro_batch_size=16,
        negatives=3,
        max_length=128,
        texts_per_step=64,
        lora_layers=15,
        lora_dropout=0.0,
        gradient_checkpointing=False,
    )
    start = time.perf_counter()
    prepared = prepare_distill(None, config, args.stage_dir, show_progress=True)
    print(f"prepared in {time.perf_counter() - start:.0f} s", flush=True)
    student = Encoder.load(args.model, precision="fp32", dtype="float32", device="cpu")
    lm, tokenizer = student.model, student.tokenizer
    rows = []
    for loss in ("kl", "embedding", "kl+embedding"):
        settings = dataclasses.replace(prepared, loss=loss)
        with training_stage("distill", lm, tokenizer, settings, World()) as (stage, model):
            params = [p for p in model.parameters() if p.requires_grad]
            for step in range(args.steps):
                for p in params:
                    p.grad = None
                began = time.perf_counter()
                value, tokens = stage.step(step)
                seconds = time.perf_counter() - began
                norm = torch.norm(torch.stack([p.grad.norm() for p in params if p.grad is not None])).item()
                rows.append((loss, step, value, norm, seconds, tokens))
                print(
                    f"{loss:<13} step {step}: loss {value:.5f}  grad norm {norm:.4g}  {seconds:.1f} s",
                    flush=True,
                )
            model.unload()  # back to the student's own weights for the next loss
    kl = [r for r in rows if r[0] == "kl"]
    embedding = [r for r in rows if r[0] == "embedding"]
    ratio = sum(a[3] / b[3] for a, b in zip(kl, embedding, strict=True)) / len(kl)
    lines = [
        "# The distill stage's losses on the real student",
        "",
        f"`python benchmarks/distill_losses.py`: {args.model}, teacher {args.teacher}, batch 16 queries x 4",
        "candidates + 64 texts, 128 tokens, LoRA on the top 15 layers, fp32 on 2 CPU cores; the first",
        f"{args.steps} steps of each loss from the same weights.",
        "",
        "| loss | step | value | gradient norm | seconds | tokens |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    lines += [f"| {a} | {b} | {c:.5f} | {d:.4g} | {e:.1f} | {f} |" for a, b, c, d, e, f in rows]
    seconds = {
        loss: sum(r[4] for r in rows if r[0] == loss) / args.steps
        for loss in ("kl", "embedding", "kl+embedding")
    }
    lines += [
        "",
        f"KL's gradient norm over the embedding term's, mean of the steps: **{ratio:.1f}**.",
        "Mean seconds a step, over KL's: "
        + ", ".join(f"{loss} {s:.1f} s ({s / seconds['kl']:.2f}x)" for loss, s in seconds.items())
        + " (one run, the losses one after the other, nothing else on the cores).",
    ]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "distill_losses.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
