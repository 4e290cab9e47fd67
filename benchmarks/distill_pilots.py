"""Release 0.6's pilots: each lever of the distill stage on the same budget, scored on the dev splits only.

    python benchmarks/distill_data.py runs/distill-data --dev runs/extra-dev
    python benchmarks/supervised_data.py runs/supervised-data --dev runs/squad-dev500 --dev-queries 500 \
        --pubmedqa-dev runs/pubmedqa-dev
    python benchmarks/distill_pilots.py                           # every lever (resumes; scores once each)
    python benchmarks/distill_pilots.py --levers kl embedding     # some of them
    python benchmarks/distill_pilots.py --steps 2 --no-score      # the two-step trial

Every pilot starts from release 0.5 of llm2vec-smollm2-135m (the student levers from their own base
model) and trains the distill stage of benchmarks/configs/smollm2-distill-0.6.toml on
benchmarks/distill_data.py's pairs, one change each (LEVERS; full fine-tuning also takes its own
learning rate; the generated-questions pilot adds benchmarks/generated_pairs.py's pairs, written on
first use).
Runs go to runs/pilots/<lever> and resume when killed; each finished pilot's encoder is scored dense
(nDCG@10) on squad-dev500, pubmedqa-dev and extra-dev, beside release 0.5 itself (the start), into
benchmarks/results/distill_pilots.json and .md.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import statistics
from pathlib import Path

import torch
from distill_dev import stage_folder
from generated_pairs import folder as generated_folder
from students import gemma3_gguf
from teachers import mpnet_folder

from ragkit.adapt import adapt, stage_configs
from ragkit.adapt.trainer import autocast_dtype
from ragkit.eval import DenseSearch, evaluate, load_task
from ragkit.eval.models import load_eval_model

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
CONFIG = ROOT / "configs" / "smollm2-distill-0.6.toml"
START = "llm2vec-smollm2-135m"  # release 0.5
START_LABEL = "release 0.5 (start)"
DEV = [Path("runs/squad-dev500"), Path("runs/pubmedqa-dev"), Path("runs/extra-dev")]
DATA = Path("runs/distill-data")
TEXTS = str(DATA / "texts.jsonl")
# One change each from the TOML (the "kl" pilot as written).
LEVERS: dict[str, dict] = {
    "kl": {},  # release 0.5's loss, on the broad pairs
    "embedding": {"loss": "embedding", "texts": TEXTS},
    "kl+embedding": {"loss": "kl+embedding", "texts": TEXTS},
    # The pairs plus questions SmolLM2-135M-Instruct wrote for unlabeled paragraphs (generated_pairs.py).
    "kl+embedding, with generated questions": {"loss": "kl+embedding", "texts": TEXTS, "data": "{generated}"},
    "kl+embedding, LoRA on all 30 layers": {"loss": "kl+embedding", "texts": TEXTS, "lora_layers": 30},
    # Every weight of the 135M student (embeddings too), at full fine-tuning's usual rate, not LoRA's.
    # One batch of 16 x 128 tokens, forward, backward and AdamW, on this CPU: LoRA on 15 layers 49 s,
    # full on 15 40 s (LoRA's extra matmuls and dropout cost more forward), full on all 30 66 s (its
    # AdamW step alone 15 s); timed while another job shared the cores, so ratios only.
    "kl+embedding, full fine-tuning": {
        "loss": "kl+embedding",
        "texts": TEXTS,
        "tuning": "full",
        "lora_layers": 30,
        "lr": 2e-5,
    },
    # Students: two base decoders that install offline, unadapted, on the same budget (LoRA on the
    # top half of their layers: 15 of SmolLM2's 30, 9 of Gemma 3's 18).
    "student smollm2-135m (base), kl+embedding": {
        "start": "smollm2-135m",
        "loss": "kl+embedding",
        "texts": TEXTS,
    },
    "student gemma-3-270m (base), kl+embedding": {
        "start": "{gemma3}",
        "loss": "kl+embedding",
        "texts": TEXTS,
        "lora_layers": 9,
    },
    # The dev splits' best teacher (benchmarks/results/teachers.md): MiniLM and mpnet's mean, BM25 0.2.
    # Last, since mpnet first embeds the 41k candidate passages (hours on 2 cores).
    "kl, mean teacher + bm25": {"teacher": "all-minilm-l6-v2+{mpnet}", "teacher_bm25_weight": 0.2},
}


def data(lever: str) -> str:
    """A pilot's pairs: distill_data.py's, or with the generated questions (written on first use)."""
    return str(generated_folder(DATA, DEV) if LEVERS[lever].get("data") == "{generated}" else DATA / "pairs")


def start(lever: str) -> str:
    """The model a pilot starts from: release 0.5, or a lever's own student."""
    name = LEVERS[lever].get("start", START)
    return str(gemma3_gguf()) if name == "{gemma3}" else name


def configs(lever: str, steps: int | None) -> dict:
    trial = {"warmup_steps": 0, "checkpoint_every": 1} if steps else {}  # a trial of a few steps
    lever_settings = {k: v for k, v in LEVERS[lever].items() if k not in ("start", "data")}
    if "{mpnet}" in lever_settings.get("teacher", ""):
        lever_settings["teacher"] = lever_settings["teacher"].format(mpnet=mpnet_folder())
    return stage_configs(
        ["distill"],
        "cpu-small",
        file=CONFIG,
        data={"distill": data(lever)},
        settings={"distill": {**lever_settings, **trial}},
        steps=steps,
    )


def folder(lever: str) -> Path:
    return Path("runs/pilots") / lever.replace(" ", "").replace(",", "-").replace("+", "-plus-")


def precision() -> str:
    """What the pilots' forward passes ran in here: the TOML's autocast on this machine's CPU."""
    used = autocast_dtype(configs("kl", None)["distill"], torch.device("cpu"))
    return "bf16 autocast" if used == torch.bfloat16 else "fp32"


def seconds_per_step(lever: str) -> float | None:
    """The median step time in a pilot's log: a resumed run restarts its clock, and a step slowed by
    another job on the cores is an outlier the median ignores."""
    log = stage_folder(folder(lever)) / "log.csv"
    if not log.is_file():
        return None
    with log.open(newline="") as f:
        rows = [(int(r["step"]), float(r["elapsed_s"])) for r in csv.DictReader(f)]
    steps = [t1 - t0 for (s0, t0), (s1, t1) in itertools.pairwise(rows) if s1 == s0 + 1 and t1 > t0]
    return statistics.median(steps) if steps else None


def plot(scores: dict[str, dict[str, float]], names: list[str], path: Path) -> None:
    """Each pilot's bars beside the start's lines: which lever moved which dev split."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pilots = [p for p in LEVERS if all(n in scores.get(p, {}) for n in names)]
    inches = 1.9 + 0.22 * len(pilots) * len(names)
    fig, ax = plt.subplots(figsize=(9, inches))
    height = 0.8 / len(names)
    for index, name in enumerate(names):
        rows = [i + index * height for i in range(len(pilots))]
        ax.barh(rows, [scores[p][name] for p in pilots], height=height, color=f"C{index}", label=name)
        if name in scores.get(START_LABEL, {}):
            ax.axvline(scores[START_LABEL][name], color=f"C{index}", linestyle="--", linewidth=1)
    ax.plot([], [], color="#555", linestyle="--", linewidth=1, label=START_LABEL)
    ax.set_yticks([i + height * (len(names) - 1) / 2 for i in range(len(pilots))], pilots, fontsize=8)
    ax.invert_yaxis()
    values = [scores[p][n] for p in pilots for n in names]
    ax.set_xlim(max(0.0, min(values) - 0.1), min(1.0, max(values) + 0.03))
    ax.set_xlabel("nDCG@10, dense")
    ax.set_title(f"Release 0.6 pilots, {CONFIG.name}, one lever each")
    fig.legend(fontsize=8, loc="lower center", ncol=len(names) + 1)
    fig.tight_layout(rect=(0, 0.35 / inches, 1, 1))  # the legend's strip below the axis label
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--levers", nargs="+", default=list(LEVERS), choices=list(LEVERS))
    parser.add_argument("--steps", type=int, help="override the TOML's steps (a trial)")
    parser.add_argument("--no-score", action="store_true")
    args = parser.parse_args()
    store = RESULTS / "distill_pilots.json"
    scores: dict[str, dict[str, float]] = json.loads(store.read_text()) if store.is_file() else {}

    def score(name: str, model: str) -> None:
        for dev in DEV:
            if dev.name in scores.get(name, {}):
                continue
            search = DenseSearch(load_eval_model(model))
            search.label = name
            (row,) = evaluate([search], [load_task(dev)], output=None)
            scores.setdefault(name, {})[dev.name] = round(row.ndcg_at_10, 4)
            store.write_text(json.dumps(scores, indent=1, sort_keys=True) + "\n")
            print(f"{name} {dev.name}: {row.ndcg_at_10:.4f}", flush=True)

    if not args.no_score:
        score(START_LABEL, START)
    for lever in args.levers:  # each scored as soon as it is trained: a stopped chain keeps its scores
        out = folder(lever)
        if args.steps:
            out = out.with_name(out.name + f"-trial{args.steps}")
        if not (out / "ragkit_config.json").is_file():
            report = adapt(start(lever), out, configs(lever, args.steps))
            print(f"{lever}: {report.stages[0]}", flush=True)
        if not args.no_score:
            score(lever, str(out))
    if args.no_score:
        return
    names = [d.name for d in DEV]
    lines = [
        "# Release 0.6 pilots (dense nDCG@10 on the dev splits)",
        "",
        f"`python benchmarks/distill_pilots.py`: {CONFIG.name}, one lever changed each. Step time: the",
        f"median of the pilot's log, on this machine's {torch.get_num_threads()} CPU threads ({precision()};",
        "compare within the table only).",
        "",
        "![pilots](distill_pilots.png)",
        "",
        f"| pilot | {' | '.join(names)} | mean | s a step |",
        f"|---|{'---:|' * (len(names) + 2)}",
    ]
    for name in [START_LABEL, *LEVERS]:  # the start first, then the levers in their order
        cells = scores.get(name, {})
        if all(n in cells for n in names):
            values = [cells[n] for n in names]
            mean = sum(values) / len(values)
            step = seconds_per_step(name) if name in LEVERS else None
            timing = f"{step:.0f}" if step else ""
            lines.append(f"| {name} | {' | '.join(f'{v:.3f}' for v in values)} | {mean:.3f} | {timing} |")
    (RESULTS / "distill_pilots.md").write_text("\n".join(lines) + "\n")
    plot(scores, names, RESULTS / "distill_pilots.png")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
